"""`officebox`: run the appliance and manage its configuration from a console."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
import time
from pathlib import Path

from appliance import backup, control, firmware, schema
from appliance.apply import ConfigError
from appliance.context import BOX_DATA_DIR
from appliance.fsutil import atomic_write
from appliance.service import ApplyError
from appliance.store import diff_documents
from appliance.users import hash_password


def data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        return Path(args.data_dir)
    if os.environ.get("OFFICEBOX_DATA_DIR"):
        return Path(os.environ["OFFICEBOX_DATA_DIR"])
    return Path("var") if args.lab else BOX_DATA_DIR


def open_runtime(args: argparse.Namespace):
    from appliance.runtime import Runtime

    runtime = Runtime(data_dir(args), lab=args.lab)
    return runtime


def socket_path(args: argparse.Namespace) -> Path:
    return data_dir(args) / "run" / "core" / "control.sock"


def submit(args: argparse.Namespace, payload: dict) -> int:
    """Send a change to the running appliance, or apply it offline when it is not running."""
    payload["author"] = args.author
    answer = control.request(socket_path(args), payload)
    if answer is None:
        runtime = open_runtime(args)
        runtime.bootstrap()
        answer = control._handle(runtime, payload)
    if not answer.get("ok"):
        errors = answer.get("errors") or []
        print("error: the configuration is not valid" if errors else f"error: {answer.get('error')}",
              file=sys.stderr)
        for path, message in errors.items() if isinstance(errors, dict) else errors:
            print(f"  {path or '(general)'}: {message}", file=sys.stderr)
        return 1
    print(f"applied as revision #{answer['revision']}")
    if "confirm_seconds" in answer:
        print(f"this change could cut the admin off: it comes back in {answer['confirm_seconds']} s "
              "unless confirmed with: officebox config confirm")
    return 0


def cmd_confirm(args: argparse.Namespace) -> int:
    answer = control.request(socket_path(args), {"op": "confirm", "author": args.author})
    if answer is None or not answer.get("ok"):
        print("nothing to confirm: the appliance is not running" if answer is None
              else f"error: {answer.get('error')}", file=sys.stderr)
        return 1
    print("change confirmed: it stays" if answer["confirmed"] else "no change was waiting for confirmation")
    return 0


def set_path(document: dict, dotted: str, value) -> None:
    node = document
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif last not in node:
        raise KeyError(f"{dotted}: no such setting")
    else:
        node[last] = value


def cmd_run(args: argparse.Namespace) -> int:
    runtime = open_runtime(args)
    asyncio.run(runtime.serve(admin_port=args.admin_port))
    if runtime.restart_requested:
        if os.environ.get("OFFICEBOX_LAUNCHER"):  # the box: systemd starts officebox-boot again
            return 0
        print("OfficeBox restarting", flush=True)
        os.execv(sys.executable, [sys.executable, "-m", "appliance.cli", *sys.argv[1:]])
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    answer = control.request(socket_path(args), {"op": "restart"})
    if answer is None:
        print("the appliance is not running", file=sys.stderr)
        return 3
    print("the appliance is restarting")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    answer = control.request(socket_path(args), {"op": "status"})
    if answer is None:
        print("the appliance is not running")
        return 3
    print(f"web admin: {answer['admin_url']}")
    for name, status in answer["services"].items():
        print(f"{name:<14} {status['health']:<9} {status['summary']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    runtime = open_runtime(args)
    runtime.bootstrap()
    rev = runtime.store.revision(args.revision) if args.revision else runtime.store.current()
    if rev is None:
        print(f"error: no revision #{args.revision}", file=sys.stderr)
        return 1
    document = rev.document if args.show_secrets else schema.mask_secrets(rev.document)
    if args.section:
        if args.section not in document:
            print(f"error: no section {args.section!r}", file=sys.stderr)
            return 1
        document = document[args.section]
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    runtime = open_runtime(args)
    runtime.bootstrap()
    base = runtime.store.current()
    document = schema.to_document(base.config)  # with the defaults of settings added since it was stored
    try:
        value = json.loads(args.value)
    except json.JSONDecodeError:
        value = args.value
    try:
        set_path(document, args.key, value)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        print(f"error: {args.key}: no such setting ({exc})", file=sys.stderr)
        return 1
    runtime.store.close()
    return submit(args, {"op": "apply", "document": document, "summary": args.message or f"set {args.key}",
                         "base": base.id})


def cmd_history(args: argparse.Namespace) -> int:
    runtime = open_runtime(args)
    runtime.bootstrap()
    current = runtime.store.current_id()
    for rev in runtime.store.history(limit=args.limit):
        mark = "*" if rev.id == current else " "
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rev.created))
        print(f"{mark}#{rev.id:<5} {when}  {rev.state:<8} {rev.author:<12} {rev.summary}"
              + (f"  ({rev.error})" if rev.error else ""))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    runtime = open_runtime(args)
    runtime.bootstrap()
    old = runtime.store.revision(args.old)
    new = runtime.store.revision(args.new) if args.new else runtime.store.current()
    if old is None or new is None:
        print("error: no such revision", file=sys.stderr)
        return 1
    print(diff_documents(old.document, new.document, f"#{old.id}", f"#{new.id}") or "(no difference)")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    return submit(args, {"op": "rollback", "revision": args.revision})


def read_passphrase(args: argparse.Namespace, confirm: bool) -> str:
    """--passphrase-stdin reads one line; otherwise asked on the terminal (twice when making one)."""
    if args.passphrase_stdin:
        passphrase = sys.stdin.readline().rstrip("\n")
    else:
        passphrase = getpass.getpass("backup passphrase: ")
        if confirm and getpass.getpass("repeat the passphrase: ") != passphrase:
            raise backup.BackupError("the two passphrases differ")
    if len(passphrase) < 8:
        raise backup.BackupError("the passphrase needs at least 8 characters")
    return passphrase


def cmd_backup(args: argparse.Namespace) -> int:
    passphrase = read_passphrase(args, confirm=True) if args.encrypt else None
    runtime = open_runtime(args)
    runtime.bootstrap()
    manifest = backup.create_backup(runtime.ctx, runtime.engine, Path(args.file), passphrase)
    kind = "encrypted backup" if passphrase else "backup"
    print(f"{kind} of revision #{manifest['revision']} written to {args.file} ({len(manifest['files'])} files)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    try:
        encrypted = backup.is_encrypted(Path(args.file))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    passphrase = read_passphrase(args, confirm=False) if encrypted else None
    answer = control.request(socket_path(args), {"op": "restore", "file": str(Path(args.file).resolve()),
                                                 "passphrase": passphrase})
    if answer is not None:  # running: checked now, restored by a restart
        if not answer["ok"]:
            print(f"error: {answer['error']}", file=sys.stderr)
            return 1
        print("backup checked; the appliance restarts to restore it")
        return 0
    runtime = open_runtime(args)
    runtime.bootstrap()
    try:
        rev = backup.restore_backup(runtime.ctx, runtime.engine, Path(args.file), args.author, passphrase)
    except backup.BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"backup restored as revision #{rev}")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("new password: ")
    try:
        password_hash = hash_password(password)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    runtime = open_runtime(args)
    runtime.bootstrap()
    base = runtime.store.current()
    document = base.document
    user = next((u for u in document["users"] if u["login"] == args.login), None)
    if user is None:
        print(f"error: no user {args.login!r}", file=sys.stderr)
        return 1
    user["password_hash"] = password_hash
    runtime.store.close()
    return submit(args, {"op": "apply", "document": document, "summary": f"password of {args.login} reset",
                         "base": base.id})


def cmd_system_update(args: argparse.Namespace) -> int:
    """A whole-system update (.raucb, the OS image's RAUC): verify or install it into the other slot."""
    system = firmware.SystemUpdate()
    info = system.verify(Path(args.file))
    if args.action == "verify":
        print(f"system update {info['version']}: signature good ({info['compatible']})")
        return 0
    started = time.monotonic()
    system.install(Path(args.file))
    print(f"system update {info['version']} installed into the other root slot in {time.monotonic() - started:.0f} s; "
          "restart the box to run it (it falls back to this system if the web admin does not come up)")
    return 0


def cmd_firmware(args: argparse.Namespace) -> int:
    box = firmware.BoxFirmware(data_dir(args))
    running = box.running()
    if args.action == "status":
        print(f"running {running}; previous {box.slots.previous() or '-'}")
        if firmware.SystemUpdate().available():
            state = firmware.SystemUpdate().status()
            for name, slot in sorted(state["slots"].items()):
                print(f"root slot {name}: {slot['state']}, {'good' if slot['good'] else 'bad'}, "
                      f"system {slot['version'] or '-'}")
        return 0
    if args.action in ("verify", "install") and args.file.endswith(".raucb"):
        return cmd_system_update(args)
    if args.action == "rollback":
        print(f"firmware {box.slots.rollback()} is active again; restart the appliance to run it")
        return 0
    try:
        manifest, payload = box.verify(Path(args.file), args.allow_downgrade)
    except (firmware.FirmwareError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.action == "verify":
        print(f"firmware {manifest['version']}: signature and checksum good (key {manifest['key_id']})")
        return 0
    box.slots.install(manifest, payload)
    print(f"firmware {manifest['version']} installed; restart the appliance to run it "
          f"(`officebox firmware rollback` goes back to {running})")
    return 0


def cmd_vpn_bundle(args: argparse.Namespace) -> int:
    """The peer bundle for the branch of a certificate tunnel, issued by this box's VPN CA (a secret: 0600)."""
    from services.vpn.service import issue_bundle

    runtime = open_runtime(args)
    vpn = runtime.services["vpn"]
    text = issue_bundle(getattr(vpn, "inner", vpn).pki, runtime.config, args.tunnel)
    atomic_write(Path(args.output), text, mode=0o600)
    print(f"peer bundle for the tunnel {args.tunnel} written to {args.output}: a secret, import it on the "
          "branch box and delete this copy")
    return 0


def cmd_vpn_revoke(args: argparse.Namespace) -> int:
    """Revoke every certificate this box issued to the branch of a tunnel; a running charon refuses it at once."""
    from appliance.service import ApplyError
    from services.vpn.service import revoke_peer

    runtime = open_runtime(args)
    vpn = runtime.services["vpn"]
    vpn = getattr(vpn, "inner", vpn)
    try:
        serials = revoke_peer(vpn.pki, vpn.paths, runtime.config, args.tunnel)
    except ApplyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"revoked {len(serials)} certificate(s) of the tunnel {args.tunnel} (serial {', '.join(serials)}): "
          "issue a new peer bundle to let the branch in again")
    return 0


LAB_HELP = "lab mode: data in ./var, loopback, unprivileged ports"
DATA_DIR_HELP = f"data directory (default {BOX_DATA_DIR}, ./var with --lab)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="officebox", description=__doc__)
    p.add_argument("--lab", action="store_true", help=LAB_HELP)
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    # the same two options after the command too (`officebox run --lab`), without resetting them there
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lab", action="store_true", default=argparse.SUPPRESS, help=LAB_HELP)
    common.add_argument("--data-dir", default=argparse.SUPPRESS, help=DATA_DIR_HELP)

    def add(subparsers, name: str, **kw) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, parents=[common], **kw)

    p.add_argument("--author", default=os.environ.get("SUDO_USER") or "console")
    sub = p.add_subparsers(dest="command", required=True)
    run = add(sub, "run", help="run the appliance until SIGTERM")
    run.add_argument("--admin-port", type=int)
    run.set_defaults(func=cmd_run)
    add(sub, "status", help="status of the running appliance").set_defaults(func=cmd_status)
    cfg = add(sub, "config", help="show and change the configuration").add_subparsers(dest="action",
                                                                                          required=True)
    show = add(cfg, "show")
    show.add_argument("--revision", type=int)
    show.add_argument("--section")
    show.add_argument("--show-secrets", action="store_true")
    show.set_defaults(func=cmd_show)
    setp = add(cfg, "set", help="set one value by dotted path, e.g. system.company_name 'Acme'")
    setp.add_argument("key")
    setp.add_argument("value", help="a JSON value, or a plain string")
    setp.add_argument("-m", "--message")
    setp.set_defaults(func=cmd_set)
    add(cfg, "confirm", help="keep a change that waits for confirmation (else it comes back by itself)"
        ).set_defaults(func=cmd_confirm)
    hist = add(cfg, "history")
    hist.add_argument("-n", "--limit", type=int, default=30)
    hist.set_defaults(func=cmd_history)
    diff = add(cfg, "diff")
    diff.add_argument("old", type=int)
    diff.add_argument("new", type=int, nargs="?")
    diff.set_defaults(func=cmd_diff)
    rb = add(cfg, "rollback")
    rb.add_argument("revision", type=int)
    rb.set_defaults(func=cmd_rollback)
    bk = add(sub, "backup", help="write a backup file")
    bk.add_argument("file")
    bk.add_argument("--encrypt", action="store_true", help="encrypt it with a passphrase (asked or --passphrase-stdin)")
    bk.add_argument("--passphrase-stdin", action="store_true")
    bk.set_defaults(func=cmd_backup)
    add(sub, "restart", help="restart the running appliance").set_defaults(func=cmd_restart)
    rs = add(sub, "restore", help="restore a backup file (a running appliance restarts to do it)")
    rs.add_argument("file")
    rs.add_argument("--passphrase-stdin", action="store_true", help="read an encrypted backup's passphrase from stdin")
    rs.set_defaults(func=cmd_restore)
    user = add(sub, "user", help="user accounts").add_subparsers(dest="action", required=True)
    pw = add(user, "passwd", help="reset a user's password (e.g. a locked-out admin)")
    pw.add_argument("login")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(func=cmd_passwd)
    vpn = add(sub, "vpn", help="VPN certificates").add_subparsers(dest="action", required=True)
    pb = add(vpn, "peer-bundle", help="issue the key and certificate of a branch (certificate tunnel) to a file")
    pb.add_argument("tunnel", help="the head office's tunnel to that branch")
    pb.add_argument("-o", "--output", required=True, help="the bundle file to write (mode 0600)")
    pb.set_defaults(func=cmd_vpn_bundle)
    rp = add(vpn, "revoke-peer", help="revoke the certificates issued to the branch of a tunnel (the CRL charon loads)")
    rp.add_argument("tunnel", help="the head office's tunnel to that branch")
    rp.set_defaults(func=cmd_vpn_revoke)
    fw = add(sub, "firmware", help="verify, install or roll back a signed firmware bundle "
                                  "(FILE.raucb: a whole-system update of the OS image)")
    fw_sub = fw.add_subparsers(dest="action", required=True)
    for action in ("verify", "install"):
        one = add(fw_sub, action)
        one.add_argument("file")
        one.add_argument("--allow-downgrade", action="store_true")
        one.set_defaults(func=cmd_firmware)
    add(fw_sub, "status").set_defaults(func=cmd_firmware)
    add(fw_sub, "rollback").set_defaults(func=cmd_firmware)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ApplyError, ConfigError, backup.BackupError, firmware.FirmwareError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
