include $(sort $(wildcard $(BR2_EXTERNAL_OFFICEBOX_PATH)/package/*/*.mk))
