# ruff: noqa: E501 (a table of texts: one prompt per line reads better than wrapped strings)
"""Every prompt the box's voice applications say (voicemail, feature codes, attendant, dial by name),
by key, in English, French and Mandarin Chinese as spoken in Taiwan.

Voices (Debian's espeak-ng 1.51 data): `en-gb` and `fr-fr`. For Mandarin, Debian offers `cmn` and
`cmn-latn-pinyin`, no Taiwan variant. `cmn` turns characters into pinyin with tone digits and then reads
that Latin text as English (請 came out as "king three", checked with `espeak-ng -x`), so we use
`cmn-latn-pinyin` and give it pinyin written with Taiwan's readings (和 hàn) and the tone
sandhi of 一 and 不 spelt out, which its dictionary does not apply. The characters (Traditional, as in
Taiwan) are kept for the web admin; only the pinyin is spoken.

An entry is `key: (English, French, (Chinese characters, pinyin))`. Number words are in NUMBERS (which
keys each language's rules use: numbers.py).
"""
from __future__ import annotations

LANGUAGES = {"en": "English", "fr": "Français", "zh-TW": "中文（台灣）"}
VOICES = {"en": "en-gb", "fr": "fr-fr", "zh-TW": "cmn-latn-pinyin"}
SPEED = {"en": 150, "fr": 150, "zh-TW": 140}  # words per minute: clear over a phone line

PROMPTS: dict[str, tuple[str, str, tuple[str, str]]] = {
    # -- callers leaving a message
    "vm-leave-message": (
        "Please leave a message after the tone. Press hash when you have finished.",
        "Veuillez laisser un message après le bip sonore. Appuyez sur dièse lorsque vous avez terminé.",
        ("請在嗶聲後留言，完成後請按井字鍵。", "qing3 zai4 bi1 sheng1 hou4 liu2 yan2, wan2 cheng2 hou4 qing3 an4 jing3 zi4 jian4.")),
    "vm-unavailable": (
        "The person you are calling is not available.",
        "Votre correspondant n'est pas disponible.",
        ("您撥打的用戶現在無法接聽。", "nin2 bo1 da3 de yong4 hu4 xian4 zai4 wu2 fa3 jie1 ting1.")),
    "vm-busy": (
        "The person you are calling is on the phone.",
        "Votre correspondant est déjà en ligne.",
        ("您撥打的用戶正在通話中。", "nin2 bo1 da3 de yong4 hu4 zheng4 zai4 tong1 hua4 zhong1.")),
    "vm-extension": ("Extension", "Le poste", ("分機", "fen1 ji1")),
    "vm-is-unavailable": ("is not available.", "n'est pas disponible.", ("現在無法接聽。", "xian4 zai4 wu2 fa3 jie1 ting1.")),
    "vm-is-busy": ("is on the phone.", "est en ligne.", ("正在通話中。", "zheng4 zai4 tong1 hua4 zhong1.")),
    "vm-message-saved": (
        "Your message has been recorded. Thank you.",
        "Votre message a été enregistré. Merci.",
        ("您的留言已錄下，謝謝。", "nin2 de liu2 yan2 yi3 lu4 xia4, xie4 xie.")),
    "vm-too-short": (
        "Your message was too short and has not been kept.",
        "Votre message était trop court et n'a pas été conservé.",
        ("您的留言太短，沒有保存。", "nin2 de liu2 yan2 tai4 duan3, mei2 you3 bao3 cun2.")),
    "vm-mailbox-full": (
        "This mailbox is full and cannot take new messages.",
        "Cette boîte vocale est pleine et ne peut plus recevoir de messages.",
        ("語音信箱已滿，無法再留言。", "yu3 yin1 xin4 xiang1 yi3 man3, wu2 fa3 zai4 liu2 yan2.")),
    "vm-not-stored": (
        "Sorry, your message could not be stored.",
        "Désolé, votre message n'a pas pu être enregistré.",
        ("抱歉，您的留言無法儲存。", "bao4 qian4, nin2 de liu2 yan2 wu2 fa3 chu3 cun2.")),
    # -- the owner's menu
    "vm-enter-mailbox": (
        "Please enter your mailbox number, followed by hash.",
        "Veuillez composer le numéro de votre boîte vocale, suivi de dièse.",
        ("請輸入您的信箱號碼，再按井字鍵。", "qing3 shu1 ru4 nin2 de xin4 xiang1 hao4 ma3, zai4 an4 jing3 zi4 jian4.")),
    "vm-enter-pin": (
        "Please enter your PIN, followed by hash.",
        "Veuillez composer votre code secret, suivi de dièse.",
        ("請輸入您的密碼，再按井字鍵。", "qing3 shu1 ru4 nin2 de mi4 ma3, zai4 an4 jing3 zi4 jian4.")),
    "vm-invalid-pin": (
        "Invalid PIN. Please try again.",
        "Code secret incorrect. Veuillez réessayer.",
        ("密碼錯誤，請再試一次。", "mi4 ma3 cuo4 wu4, qing3 zai4 shi4 yi2 ci4.")),
    "vm-too-many-attempts": (
        "Too many wrong attempts.",
        "Trop de tentatives incorrectes.",
        ("錯誤次數太多。", "cuo4 wu4 ci4 shu4 tai4 duo1.")),
    "vm-you-have": ("You have", "Vous avez", ("您有", "nin2 you3")),
    "vm-new-message": ("new message", "nouveau message", ("則新留言", "ze2 xin1 liu2 yan2")),
    "vm-new-messages": ("new messages", "nouveaux messages", ("則新留言", "ze2 xin1 liu2 yan2")),
    "vm-old-message": ("old message", "ancien message", ("則舊留言", "ze2 jiu4 liu2 yan2")),
    "vm-old-messages": ("old messages", "anciens messages", ("則舊留言", "ze2 jiu4 liu2 yan2")),
    "vm-and": ("and", "et", ("和", "han4")),
    "vm-no-messages": ("You have no messages.", "Vous n'avez aucun message.", ("您沒有留言。", "nin2 mei2 you3 liu2 yan2.")),
    "vm-main-menu": (
        "For new messages, press 1. For old messages, press 2. For saved messages, press 3. "
        "To change your greetings and name, press 4. To change your PIN, press 5. To leave, press star.",
        "Pour écouter les nouveaux messages, appuyez sur 1. Pour les anciens messages, appuyez sur 2. "
        "Pour les messages sauvegardés, appuyez sur 3. Pour changer vos annonces et votre nom, appuyez sur 4. "
        "Pour changer votre code secret, appuyez sur 5. Pour quitter, appuyez sur étoile.",
        ("聽新留言請按一，舊留言請按二，已儲存的留言請按三，更改問候語和姓名請按四，更改密碼請按五，離開請按星號。",
         "ting1 xin1 liu2 yan2 qing3 an4 yi1, jiu4 liu2 yan2 qing3 an4 er4, yi3 chu3 cun2 de liu2 yan2 qing3 an4 san1, "
         "geng1 gai3 wen4 hou4 yu3 han4 xing4 ming2 qing3 an4 si4, geng1 gai3 mi4 ma3 qing3 an4 wu3, "
         "li2 kai1 qing3 an4 xing1 hao4.")),
    "vm-message-menu": (
        "To replay the message, press 1. For the next message, press 2. To delete it, press 3. "
        "To save it, press 4. To forward it to another mailbox, press 5. To call back the caller, press 6. "
        "For the main menu, press star.",
        "Pour réécouter le message, appuyez sur 1. Pour le message suivant, appuyez sur 2. Pour le supprimer, "
        "appuyez sur 3. Pour le sauvegarder, appuyez sur 4. Pour le transférer à une autre boîte vocale, "
        "appuyez sur 5. Pour rappeler l'appelant, appuyez sur 6. Pour revenir au menu principal, appuyez sur étoile.",
        ("重聽請按一，下一則請按二，刪除請按三，儲存請按四，轉寄到其他信箱請按五，回撥給來電者請按六，回到主選單請按星號。",
         "chong2 ting1 qing3 an4 yi1, xia4 yi4 ze2 qing3 an4 er4, shan1 chu2 qing3 an4 san1, chu3 cun2 qing3 an4 si4, "
         "zhuan3 ji4 dao4 qi2 ta1 xin4 xiang1 qing3 an4 wu3, hui2 bo1 gei3 lai2 dian4 zhe3 qing3 an4 liu4, "
         "hui2 dao4 zhu3 xuan3 dan1 qing3 an4 xing1 hao4.")),
    "vm-message-keys": (
        "To replay the message, press 5. To delete it, press 7. To save it, press 9. For the next message, press hash.",
        "Pour réécouter le message, appuyez sur 5. Pour le supprimer, appuyez sur 7. Pour le sauvegarder, appuyez sur 9. "
        "Pour le message suivant, appuyez sur dièse.",
        ("重聽請按五，刪除請按七，儲存請按九，下一則請按井字鍵。",
         "chong2 ting1 qing3 an4 wu3, shan1 chu2 qing3 an4 qi1, chu3 cun2 qing3 an4 jiu3, xia4 yi4 ze2 qing3 an4 jing3 zi4 jian4.")),
    "vm-options-offer": (
        "For your mailbox options, press 0.", "Pour les options de votre boîte vocale, appuyez sur 0.",
        ("信箱設定請按零。", "xin4 xiang1 she4 ding4 qing3 an4 ling2.")),
    "vm-options-menu": (
        "To record your unavailable greeting, press 1. For your busy greeting, press 2. To record your name, press 3. "
        "To leave, press star.",
        "Pour enregistrer votre annonce d'absence, appuyez sur 1. Pour votre annonce d'occupation, appuyez sur 2. "
        "Pour enregistrer votre nom, appuyez sur 3. Pour quitter, appuyez sur étoile.",
        ("錄製無法接聽問候語請按一，忙線問候語請按二，錄製姓名請按三，離開請按星號。",
         "lu4 zhi4 wu2 fa3 jie1 ting1 wen4 hou4 yu3 qing3 an4 yi1, mang2 xian4 wen4 hou4 yu3 qing3 an4 er4, "
         "lu4 zhi4 xing4 ming2 qing3 an4 san1, li2 kai1 qing3 an4 xing1 hao4.")),
    "vm-message": ("Message", "Message", ("留言", "liu2 yan2")),
    "vm-from": ("From", "De la part de", ("來自", "lai2 zi4")),
    "vm-deleted": ("Message deleted.", "Message supprimé.", ("留言已刪除。", "liu2 yan2 yi3 shan1 chu2.")),
    "vm-saved": ("Message saved.", "Message sauvegardé.", ("留言已儲存。", "liu2 yan2 yi3 chu3 cun2.")),
    "vm-no-more-messages": (
        "There are no more messages.", "Il n'y a plus de messages.", ("沒有更多留言了。", "mei2 you3 geng4 duo1 liu2 yan2 le.")),
    "vm-forward-to": (
        "Enter the mailbox to forward this message to, followed by hash.",
        "Composez le numéro de la boîte vocale destinataire, suivi de dièse.",
        ("請輸入要轉寄的信箱號碼，再按井字鍵。", "qing3 shu1 ru4 yao4 zhuan3 ji4 de xin4 xiang1 hao4 ma3, zai4 an4 jing3 zi4 jian4.")),
    "vm-record-introduction": (
        "Record your introduction after the tone, then press hash.",
        "Enregistrez votre introduction après le bip, puis appuyez sur dièse.",
        ("請在嗶聲後錄製說明，完成後請按井字鍵。", "qing3 zai4 bi1 sheng1 hou4 lu4 zhi4 shuo1 ming2, wan2 cheng2 hou4 qing3 an4 jing3 zi4 jian4.")),
    "vm-forwarded": ("Message forwarded.", "Message transféré.", ("留言已轉寄。", "liu2 yan2 yi3 zhuan3 ji4.")),
    "vm-greetings-menu": (
        "To record your unavailable greeting, press 1. For your busy greeting, press 2. For a temporary greeting, "
        "press 3. To record your name, press 4. For the main menu, press star.",
        "Pour enregistrer votre annonce d'absence, appuyez sur 1. Pour votre annonce d'occupation, appuyez sur 2. "
        "Pour une annonce temporaire, appuyez sur 3. Pour enregistrer votre nom, appuyez sur 4. "
        "Pour revenir au menu principal, appuyez sur étoile.",
        ("錄製無法接聽問候語請按一，忙線問候語請按二，臨時問候語請按三，錄製姓名請按四，回到主選單請按星號。",
         "lu4 zhi4 wu2 fa3 jie1 ting1 wen4 hou4 yu3 qing3 an4 yi1, mang2 xian4 wen4 hou4 yu3 qing3 an4 er4, "
         "lin2 shi2 wen4 hou4 yu3 qing3 an4 san1, lu4 zhi4 xing4 ming2 qing3 an4 si4, "
         "hui2 dao4 zhu3 xuan3 dan1 qing3 an4 xing1 hao4.")),
    "vm-record-greeting": (
        "Record your greeting after the tone, then press hash.",
        "Enregistrez votre annonce après le bip, puis appuyez sur dièse.",
        ("請在嗶聲後錄製問候語，完成後請按井字鍵。", "qing3 zai4 bi1 sheng1 hou4 lu4 zhi4 wen4 hou4 yu3, wan2 cheng2 hou4 qing3 an4 jing3 zi4 jian4.")),
    "vm-record-name": (
        "Say your name after the tone, then press hash.",
        "Dites votre nom après le bip, puis appuyez sur dièse.",
        ("請在嗶聲後說出您的姓名，完成後請按井字鍵。", "qing3 zai4 bi1 sheng1 hou4 shuo1 chu1 nin2 de xing4 ming2, wan2 cheng2 hou4 qing3 an4 jing3 zi4 jian4.")),
    "vm-greeting-saved": ("Your greeting has been saved.", "Votre annonce a été enregistrée.", ("問候語已儲存。", "wen4 hou4 yu3 yi3 chu3 cun2.")),
    "vm-new-pin": (
        "Enter your new PIN, followed by hash.", "Composez votre nouveau code secret, suivi de dièse.",
        ("請輸入新密碼，再按井字鍵。", "qing3 shu1 ru4 xin1 mi4 ma3, zai4 an4 jing3 zi4 jian4.")),
    "vm-repeat-pin": (
        "Enter your new PIN again, followed by hash.", "Composez à nouveau votre nouveau code secret, suivi de dièse.",
        ("請再輸入一次新密碼，再按井字鍵。", "qing3 zai4 shu1 ru4 yi2 ci4 xin1 mi4 ma3, zai4 an4 jing3 zi4 jian4.")),
    "vm-pin-mismatch": (
        "The two PINs are different. Your PIN has not been changed.",
        "Les deux codes sont différents. Votre code secret n'a pas été changé.",
        ("兩次輸入的密碼不同，密碼沒有更改。", "liang3 ci4 shu1 ru4 de mi4 ma3 bu4 tong2, mi4 ma3 mei2 you3 geng1 gai3.")),
    "vm-pin-changed": ("Your PIN has been changed.", "Votre code secret a été changé.", ("密碼已更改。", "mi4 ma3 yi3 geng1 gai3.")),
    # -- feature codes
    "fwd-enter-number": (
        "Enter the number to forward your calls to, followed by hash.",
        "Composez le numéro vers lequel renvoyer vos appels, suivi de dièse.",
        ("請輸入轉接的號碼，再按井字鍵。", "qing3 shu1 ru4 zhuan3 jie1 de hao4 ma3, zai4 an4 jing3 zi4 jian4.")),
    "fwd-on": ("Call forwarding is on.", "Le renvoi d'appel est activé.", ("來電轉接已開啟。", "lai2 dian4 zhuan3 jie1 yi3 kai1 qi3.")),
    "fwd-off": ("Call forwarding is off.", "Le renvoi d'appel est désactivé.", ("來電轉接已關閉。", "lai2 dian4 zhuan3 jie1 yi3 guan1 bi4.")),
    "dnd-on": ("Do not disturb is on.", "Le mode ne pas déranger est activé.", ("勿擾模式已開啟。", "wu4 rao3 mo2 shi4 yi3 kai1 qi3.")),
    "dnd-off": ("Do not disturb is off.", "Le mode ne pas déranger est désactivé.", ("勿擾模式已關閉。", "wu4 rao3 mo2 shi4 yi3 guan1 bi4.")),
    # -- attendant and dial by name
    "att-welcome": ("Welcome.", "Bienvenue.", ("歡迎來電。", "huan1 ying2 lai2 dian4.")),
    "att-dial-extension": (
        "If you know the extension of the person you are calling, dial it now.",
        "Si vous connaissez le numéro de poste de votre correspondant, composez-le maintenant.",
        ("如果您知道分機號碼，請直接撥打。", "ru2 guo3 nin2 zhi1 dao4 fen1 ji1 hao4 ma3, qing3 zhi2 jie1 bo1 da3.")),
    "att-operator": (
        "For the operator, press zero.", "Pour joindre le standard, appuyez sur zéro.", ("總機請按零。", "zong3 ji1 qing3 an4 ling2.")),
    "att-closed": (
        "Our offices are closed. Please call again during business hours.",
        "Nos bureaux sont fermés. Merci de rappeler pendant nos heures d'ouverture.",
        ("目前為非營業時間，請於營業時間再來電。", "mu4 qian2 wei2 fei1 ying2 ye4 shi2 jian1, qing3 yu2 ying2 ye4 shi2 jian1 zai4 lai2 dian4.")),
    "att-all-busy": (
        "All our lines are busy. Please hold.", "Toutes nos lignes sont occupées. Veuillez patienter.",
        ("所有線路都在忙線中，請稍候。", "suo3 you3 xian4 lu4 dou1 zai4 mang2 xian4 zhong1, qing3 shao1 hou4.")),
    "dbn-instructions": (
        "Please enter the first three letters of the person's last name on your telephone keypad.",
        "Veuillez composer les trois premières lettres du nom de famille de votre correspondant sur le clavier.",
        ("請用電話按鍵輸入對方姓氏拼音的前三個字母。", "qing3 yong4 dian4 hua4 an4 jian4 shu1 ru4 dui4 fang1 xing4 shi4 pin1 yin1 de qian2 san1 ge zi4 mu3.")),
    "dbn-no-match": (
        "No name matches. Please try again.", "Aucun nom ne correspond. Veuillez réessayer.",
        ("找不到符合的姓名，請再試一次。", "zhao3 bu2 dao4 fu2 he2 de xing4 ming2, qing3 zai4 shi4 yi2 ci4.")),
    "dbn-confirm": (
        "If this is the person you want, press 1. For the next name, press 2.",
        "Si c'est la bonne personne, appuyez sur 1. Pour le nom suivant, appuyez sur 2.",
        ("如果是這位，請按一；下一位請按二。", "ru2 guo3 shi4 zhe4 wei4, qing3 an4 yi1; xia4 yi2 wei4 qing3 an4 er4.")),
    # -- common
    "goodbye": ("Goodbye.", "Au revoir.", ("再見。", "zai4 jian4.")),
    "invalid-option": ("That is not a valid option.", "Ce choix n'est pas valide.", ("無效的選項。", "wu2 xiao4 de xuan3 xiang4.")),
    "try-again": ("Please try again.", "Veuillez réessayer.", ("請再試一次。", "qing3 zai4 shi4 yi2 ci4.")),
    "please-hold": ("Please hold.", "Veuillez patienter.", ("請稍候。", "qing3 shao1 hou4.")),
    "transferring": (
        "Please hold while your call is transferred.", "Veuillez patienter, nous transférons votre appel.",
        ("正在為您轉接，請稍候。", "zheng4 zai4 wei4 nin2 zhuan3 jie1, qing3 shao1 hou4.")),
    "number-unavailable": (
        "The number you dialled cannot be reached.", "Le numéro demandé n'est pas joignable.",
        ("您撥的號碼無法接通。", "nin2 bo1 de hao4 ma3 wu2 fa3 jie1 tong1.")),
    "press": ("Press", "Appuyez sur", ("請按", "qing3 an4")),
    "star": ("star", "étoile", ("星號", "xing1 hao4")),
    "hash": ("hash", "dièse", ("井字鍵", "jing3 zi4 jian4")),
    "minute": ("minute", "minute", ("分鐘", "fen1 zhong1")),
    "minutes": ("minutes", "minutes", ("分鐘", "fen1 zhong1")),
    "second": ("second", "seconde", ("秒", "miao3")),
    "seconds": ("seconds", "secondes", ("秒", "miao3")),
    # -- call centre queues (services/pbx/acd)
    "acd-position": ("You are caller number", "Vous êtes l'appelant numéro", ("您是第", "nin2 shi4 di4")),
    "acd-in-line": ("in the queue.", "dans la file d'attente.", ("位等候的來電。", "wei4 deng3 hou4 de lai2 dian4.")),
    "acd-estimated-wait": (
        "Your estimated waiting time is about", "Votre temps d'attente estimé est d'environ",
        ("預計等候時間約為", "yu4 ji4 deng3 hou4 shi2 jian1 yue1 wei2")),
    "acd-less-than-a-minute": (
        "Your call will be answered in less than a minute.", "Votre appel sera pris dans moins d'une minute.",
        ("您的來電將在一分鐘內接聽。", "nin2 de lai2 dian4 jiang1 zai4 yi4 fen1 zhong1 nei4 jie1 ting1.")),
    "acd-callback-offer": (
        "To be called back as soon as an agent is free, press 1. You keep your place in the queue.",
        "Pour être rappelé dès qu'un conseiller est libre, appuyez sur 1. Vous gardez votre place dans la file.",
        ("如需在專員有空時回電給您，請按一。您會保留在隊列中的位置。", "ru2 xu1 zai4 zhuan1 yuan2 you3 kong4 shi2 hui2 dian4 gei3 nin2, qing3 an4 yi1. nin2 hui4 bao3 liu2 zai4 dui4 lie4 zhong1 de wei4 zhi4.")),
    "acd-callback-confirmed": (
        "Thank you. We will call you back as soon as an agent is free. Goodbye.",
        "Merci. Nous vous rappellerons dès qu'un conseiller sera libre. Au revoir.",
        ("謝謝，專員有空時我們會立即回電給您，再見。", "xie4 xie, zhuan1 yuan2 you3 kong4 shi2 wo3 men2 hui4 li4 ji2 hui2 dian4 gei3 nin2, zai4 jian4.")),
    "acd-sorry-closed": (
        "Sorry, nobody can take your call at the moment. Please call again later.",
        "Désolé, personne ne peut prendre votre appel pour le moment. Veuillez rappeler plus tard.",
        ("抱歉，目前無人可以接聽您的來電，請稍後再撥。", "bao4 qian4, mu4 qian2 wu2 ren2 ke3 yi3 jie1 ting1 nin2 de lai2 dian4, qing3 shao1 hou4 zai4 bo1.")),
    "acd-agent-logged-in": ("You are logged in to your queues.", "Vous êtes connecté à vos files d'attente.",
                            ("您已登入您的隊列。", "nin2 yi3 deng1 ru4 nin2 de dui4 lie4.")),
    "acd-agent-logged-out": ("You are logged out.", "Vous êtes déconnecté.", ("您已登出。", "nin2 yi3 deng1 chu1.")),
    "acd-agent-pause-reason": (
        "Enter your pause reason: 1 break, 2 lunch, 3 meeting, 4 training, 5 paperwork.",
        "Indiquez le motif de votre pause : 1 pause, 2 déjeuner, 3 réunion, 4 formation, 5 travail administratif.",
        ("請輸入暫停原因：一休息，二午餐，三開會，四訓練，五文書工作。", "qing3 shu1 ru4 zan4 ting2 yuan2 yin1: yi1 xiu1 xi2, er4 wu3 can1, san1 kai1 hui4, si4 xun4 lian4, wu3 wen2 shu1 gong1 zuo4.")),
    "acd-agent-paused": ("You are paused.", "Vous êtes en pause.", ("您已暫停接聽。", "nin2 yi3 zan4 ting2 jie1 ting1.")),
    "acd-agent-resumed": (
        "Your pause is over: calls can reach you again.", "Votre pause est terminée : les appels peuvent à nouveau vous joindre.",
        ("暫停結束，您可以再次接聽來電。", "zan4 ting2 jie2 shu4, nin2 ke3 yi3 zai4 ci4 jie1 ting1 lai2 dian4.")),
    "acd-not-agent": ("This extension is not an agent of any queue.", "Ce poste n'est agent d'aucune file d'attente.",
                      ("此分機不屬於任何隊列。", "ci3 fen1 ji1 bu4 shu3 yu2 ren4 he2 dui4 lie4.")),
    # -- conferences
    "conf-alone": (
        "You are the only participant in this conference.",
        "Vous êtes le seul participant à cette conférence.",
        ("您是這場會議唯一的參加者。", "nin2 shi4 zhe4 chang3 hui4 yi4 wei2 yi1 de can1 jia1 zhe3.")),
    "conf-full": (
        "Sorry, this conference is full.",
        "Désolé, cette conférence est complète.",
        ("抱歉，這場會議已額滿。", "bao4 qian4, zhe4 chang3 hui4 yi4 yi3 e2 man3.")),
    # -- call park
    "park-parked-on": ("The call is parked on", "L'appel est parqué sur le numéro", ("通話已停泊在", "tong1 hua4 yi3 ting2 bo2 zai4")),
    "park-empty": ("There is no call parked here.", "Aucun appel n'est parqué ici.", ("這裡沒有停泊的通話。", "zhe4 li3 mei2 you3 ting2 bo2 de tong1 hua4.")),
    "park-full": ("All park slots are in use.", "Tous les emplacements de parcage sont occupés.", ("所有停泊位都已占用。", "suo3 you3 ting2 bo2 wei4 dou1 yi3 zhan4 yong4.")),
    # -- attendant administration, night service, personal assistant
    "att-enter-greeting": (
        "Please enter the greeting number, followed by hash. For one state only, type star and its digit "
        "before the hash: one, opening hours; two, closed; three, holidays; four, breaks.",
        "Veuillez composer le numéro de l'annonce, suivi de dièse. Pour un seul état, tapez étoile et son "
        "chiffre avant le dièse : un, heures d'ouverture ; deux, fermeture ; trois, jours fériés ; quatre, pauses.",
        ("請輸入問候語編號，再按井字鍵。只錄一種狀態時，在井字鍵前按星號及其數字：一，營業時間；二，非營業時間；"
         "三，假日；四，休息時段。",
         "qing3 shu1 ru4 wen4 hou4 yu3 bian1 hao4, zai4 an4 jing3 zi4 jian4. zhi3 lu4 yi4 zhong3 zhuang4 tai4 "
         "shi2, zai4 jing3 zi4 jian4 qian2 an4 xing1 hao4 ji2 qi2 shu4 zi4: yi1, ying2 ye4 shi2 jian1; er4, "
         "fei1 ying2 ye4 shi2 jian1; san1, jia4 ri4; si4, xiu1 xi2 shi2 duan4.")),
    "night-on": ("Night service is on.", "Le service de nuit est activé.", ("夜間服務已開啟。", "ye4 jian1 fu2 wu4 yi3 kai1 qi3.")),
    "night-off": ("Night service is off.", "Le service de nuit est désactivé.", ("夜間服務已關閉。", "ye4 jian1 fu2 wu4 yi3 guan1 bi4.")),
    "not-allowed": (
        "You are not allowed to do this.", "Vous n'êtes pas autorisé à faire cela.",
        ("您沒有權限執行此操作。", "nin2 mei2 you3 quan2 xian4 zhi2 xing2 ci3 cao1 zuo4.")),
    "change-failed": (
        "Sorry, the setting could not be changed.", "Désolé, le réglage n'a pas pu être modifié.",
        ("抱歉，設定無法變更。", "bao4 qian4, she4 ding4 wu2 fa3 bian4 geng1.")),
    "pa-voicemail": ("to leave a message.", "pour laisser un message.", ("留言。", "liu2 yan2.")),
    "pa-mobile": ("to reach my mobile.", "pour me joindre sur mon portable.", ("轉接我的手機。", "zhuan3 jie1 wo3 de shou3 ji1.")),
    "pa-external": ("to reach another number.", "pour joindre un autre numéro.", ("轉接另一個號碼。", "zhuan3 jie1 ling4 yi2 ge hao4 ma3.")),
    "pa-colleague": ("to reach a colleague.", "pour joindre un collègue.", ("轉接同事。", "zhuan3 jie1 tong2 shi4.")),
    "pa-operator": ("for the operator.", "pour joindre le standard.", ("轉接總機。", "zhuan3 jie1 zong3 ji1.")),
    "pa-on": ("Your personal assistant is on.", "Votre assistant personnel est activé.", ("您的個人助理已開啟。", "nin2 de ge4 ren2 zhu4 li3 yi3 kai1 qi3.")),
    "pa-off": ("Your personal assistant is off.", "Votre assistant personnel est désactivé.", ("您的個人助理已關閉。", "nin2 de ge4 ren2 zhu4 li3 yi3 guan1 bi4.")),
    "pa-menu": (
        "To switch your personal assistant on or off, press 1. To record its greeting, press 2.",
        "Pour activer ou désactiver votre assistant personnel, appuyez sur 1. Pour enregistrer son annonce, appuyez sur 2.",
        ("開啟或關閉個人助理請按一，錄製問候語請按二。", "kai1 qi3 huo4 guan1 bi4 ge4 ren2 zhu4 li3 qing3 an4 yi1, lu4 zhi4 wen4 hou4 yu3 qing3 an4 er4.")),
    # -- voicemail: warnings, temporary greeting, forwarding and calling back, the PIN by phone
    "vm-almost-full": (
        "Your mailbox is almost full. Please delete the messages you no longer need.",
        "Votre boîte vocale est presque pleine. Veuillez supprimer les messages dont vous n'avez plus besoin.",
        ("您的信箱快滿了，請刪除不再需要的留言。", "nin2 de xin4 xiang1 kuai4 man3 le, qing3 shan1 chu2 bu2 zai4 xu1 yao4 de liu2 yan2.")),
    "vm-message-more-keys": (
        "To forward it to another mailbox, press 8. To call back the caller, press 2.",
        "Pour le transférer à une autre boîte vocale, appuyez sur 8. Pour rappeler l'appelant, appuyez sur 2.",
        ("轉寄到其他信箱請按八，回撥給來電者請按二。", "zhuan3 ji4 dao4 qi2 ta1 xin4 xiang1 qing3 an4 ba1, hui2 bo1 gei3 lai2 dian4 zhe3 qing3 an4 er4.")),
    "vm-options-more": (
        "To record a temporary greeting, press 4. To remove it, press 5. To change your PIN, press 6.",
        "Pour enregistrer une annonce temporaire, appuyez sur 4. Pour la supprimer, appuyez sur 5. "
        "Pour changer votre code secret, appuyez sur 6.",
        ("錄製臨時問候語請按四，刪除臨時問候語請按五，更改密碼請按六。",
         "lu4 zhi4 lin2 shi2 wen4 hou4 yu3 qing3 an4 si4, shan1 chu2 lin2 shi2 wen4 hou4 yu3 qing3 an4 wu3, geng1 gai3 mi4 ma3 qing3 an4 liu4.")),
    "vm-temporary-removed": (
        "Your temporary greeting has been removed.", "Votre annonce temporaire a été supprimée.",
        ("臨時問候語已刪除。", "lin2 shi2 wen4 hou4 yu3 yi3 shan1 chu2.")),
    "vm-cannot-call-back": (
        "This caller cannot be called back.", "Cet appelant ne peut pas être rappelé.",
        ("無法回撥給這位來電者。", "wu2 fa3 hui2 bo1 gei3 zhe4 wei4 lai2 dian4 zhe3.")),
    "vm-pin-refused": (
        "This PIN cannot be used. Choose 4 to 12 digits, other than your extension number.",
        "Ce code ne peut pas être utilisé. Choisissez 4 à 12 chiffres, autres que votre numéro de poste.",
        ("這個密碼無法使用，請選擇四到十二位數字，不能是您的分機號碼。",
         "zhe4 ge mi4 ma3 wu2 fa3 shi3 yong4, qing3 xuan3 ze2 si4 dao4 shi2 er4 wei4 shu4 zi4, bu4 neng2 shi4 nin2 de fen1 ji1 hao4 ma3.")),
    "setting-not-changed": (
        "Sorry, this setting could not be changed.", "Désolé, ce réglage n'a pas pu être modifié.",
        ("抱歉，無法更改這項設定。", "bao4 qian4, wu2 fa3 geng1 gai3 zhe4 xiang4 she4 ding4.")),
    # -- call recording and call screening (recording/, secretary.py)
    "rec-notice": ("This call is being recorded.", "Cet appel est enregistré.", ("本通話將被錄音。", "ben3 tong1 hua4 jiang1 bei4 lu4 yin1.")),
    "scr-on": ("Call screening is on.", "Le filtrage des appels est activé.", ("過濾來電已開啟。", "guo4 lü4 lai2 dian4 yi3 kai1 qi3.")),
    "scr-off": ("Call screening is off.", "Le filtrage des appels est désactivé.", ("過濾來電已關閉。", "guo4 lü4 lai2 dian4 yi3 guan1 bi4.")),
    "scr-not-manager": ("This phone has no secretary.", "Ce poste n'a pas de secrétaire.", ("此分機沒有秘書。", "ci3 fen1 ji1 mei2 you3 mi4 shu1.")),
    "scr-failed": ("The setting could not be changed.", "Le réglage n'a pas pu être modifié.", ("無法變更設定。", "wu2 fa3 bian4 geng1 she4 ding4.")),
    # -- the temporary greeting's end date (voicemail/menu.py)
    "vm-temporary-until": (
        "Enter the last day of this greeting as eight digits, year, month and day. Or press hash for no end date.",
        "Composez le dernier jour de cette annonce en huit chiffres, année, mois et jour. Ou dièse pour ne pas "
        "fixer de fin.",
        ("請以八位數字輸入這則問候語的最後一天，年、月、日。不設結束日期請按井字鍵。",
         "qing3 yi3 ba1 wei4 shu4 zi4 shu1 ru4 zhe4 ze2 wen4 hou4 yu3 de zui4 hou4 yi4 tian1, nian2, yue4, ri4. "
         "bu2 she4 jie2 shu4 ri4 qi1 qing3 an4 jing3 zi4 jian4.")),
    "vm-temporary-until-set": (
        "The end date of your temporary greeting has been saved.",
        "La date de fin de votre annonce temporaire a été enregistrée.",
        ("臨時問候語的結束日期已儲存。", "lin2 shi2 wen4 hou4 yu3 de jie2 shu4 ri4 qi1 yi3 chu3 cun2.")),
    # -- prompts recorded by phone (voicemail/recordprompt.py)
    "pr-enter-number": (
        "Enter the number of the prompt to record, followed by hash.",
        "Composez le numéro du message à enregistrer, suivi de dièse.",
        ("請輸入要錄製的提示音編號，再按井字鍵。", "qing3 shu1 ru4 yao4 lu4 zhi4 de ti2 shi4 yin1 bian1 hao4, zai4 an4 jing3 zi4 jian4.")),
    "pr-record": (
        "Say the new prompt after the tone, then press hash.", "Dites le nouveau message après le bip, puis dièse.",
        ("請在嗶聲後說出新的提示音，然後按井字鍵。", "qing3 zai4 bi4 sheng1 hou4 shuo1 chu1 xin1 de ti2 shi4 yin1, ran2 hou4 an4 jing3 zi4 jian4.")),
    "pr-saved": (
        "The prompt has been saved.", "Le message a été enregistré.",
        ("提示音已儲存。", "ti2 shi4 yin1 yi3 chu3 cun2.")),
    # -- codes keyed during a conference (conference/app.py)
    "conf-count": ("Participants in this conference:", "Participants à cette conférence :",
                   ("本會議的參加人數：", "ben3 hui4 yi4 de can1 jia1 ren2 shu4:")),
    "conf-locked": ("The conference is now locked.", "La conférence est maintenant verrouillée.",
                    ("會議已鎖定。", "hui4 yi4 yi3 suo3 ding4.")),
    "conf-unlocked": ("The conference is now unlocked.", "La conférence est maintenant déverrouillée.",
                      ("會議已解除鎖定。", "hui4 yi4 yi3 jie3 chu2 suo3 ding4.")),
    "conf-is-locked": ("Sorry, this conference is locked.", "Désolé, cette conférence est verrouillée.",
                       ("抱歉，這場會議已鎖定。", "bao4 qian4, zhe4 chang3 hui4 yi4 yi3 suo3 ding4.")),
    "conf-removed": ("The last participant to join has been removed.", "Le dernier participant arrivé a été retiré.",
                     ("最後加入的參加者已被移出。", "zui4 hou4 jia1 ru4 de can1 jia1 zhe3 yi3 bei4 yi2 chu1.")),
    "conf-leader-only": ("Only the conference leader can do this.", "Seul l'animateur de la conférence peut faire cela.",
                         ("只有會議主持人可以這樣做。", "zhi3 you3 hui4 yi4 zhu3 chi2 ren2 ke3 yi3 zhe4 yang4 zuo4.")),
}

# number words: key -> text per language; a language only has the keys its rules (numbers.py) use
_EN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
       "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_EN_TENS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty",
            90: "ninety", 100: "hundred", 1000: "thousand", 10 ** 6: "million", 10 ** 9: "billion"}
_FR = ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze", "douze",
       "treize", "quatorze", "quinze", "seize"]
_FR_TENS = {20: "vingt", 30: "trente", 40: "quarante", 50: "cinquante", 60: "soixante", 80: "quatre-vingts",
            100: "cent", 1000: "mille", 10 ** 6: "million", 10 ** 9: "milliard"}
_ZH = [("零", "ling2"), ("一", "yi1"), ("二", "er4"), ("三", "san1"), ("四", "si4"), ("五", "wu3"), ("六", "liu4"),
       ("七", "qi1"), ("八", "ba1"), ("九", "jiu3"), ("十", "shi2")]
_ZH_UNITS = {100: ("百", "bai3"), 1000: ("千", "qian1"), 10 ** 4: ("萬", "wan4"), 10 ** 8: ("億", "yi4")}

NUMBERS: dict[str, dict[str, str | tuple[str, str]]] = {
    "en": {f"num-{n}": w for n, w in [*enumerate(_EN), *_EN_TENS.items()]} | {"num-and": "and"},
    "fr": {f"num-{n}": w for n, w in [*enumerate(_FR), *_FR_TENS.items()]} | {"num-et": "et", "num-1-f": "une"},
    "zh-TW": {f"num-{n}": w for n, w in [*enumerate(_ZH), *_ZH_UNITS.items()]} | {"num-2-liang": ("兩", "liang3")},
}


def numbered() -> list[str]:
    """The prompts an admin may record by phone (voicemail/recordprompt.py), number 1 first: the phrases in catalogue
    order (number words are not: say_number assembles them). New prompts go last to keep the numbers."""
    return list(PROMPTS)


def entries(lang: str) -> dict[str, str | tuple[str, str]]:
    """key -> text (Chinese: (characters, pinyin)) of every prompt of a language."""
    index = list(LANGUAGES).index(lang)
    return {key: texts[index] for key, texts in PROMPTS.items()} | NUMBERS[lang]


def display_text(lang: str, key: str) -> str:
    text = entries(lang)[key]
    return text[0] if isinstance(text, tuple) else text


def spoken_text(lang: str, key: str) -> str:
    text = entries(lang)[key]
    return text[1] if isinstance(text, tuple) else text
