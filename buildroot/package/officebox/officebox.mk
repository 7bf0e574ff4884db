################################################################################
#
# officebox: the signed firmware bundle from `make image`, installed as the factory firmware
#
################################################################################

OFFICEBOX_REPO = $(realpath $(BR2_EXTERNAL_OFFICEBOX_PATH)/..)
OFFICEBOX_VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' $(OFFICEBOX_REPO)/pyproject.toml)
OFFICEBOX_SITE = $(OFFICEBOX_REPO)/images/out
OFFICEBOX_SITE_METHOD = local
# never copy a signing key (the lab key lives in images/out) into the build tree
OFFICEBOX_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude='*.key'
OFFICEBOX_LICENSE = Proprietary

# Verified with the repository's own code (its venv comes from `make setup`) before it is installed.
define OFFICEBOX_INSTALL_TARGET_CMDS
	cd $(OFFICEBOX_REPO) && .venv/bin/python -m images.factory \
		--bundle $(@D)/officebox-$(OFFICEBOX_VERSION).obfw --trust $(@D) --target $(TARGET_DIR)
	$(INSTALL) -D -m 0755 $(OFFICEBOX_PKGDIR)/officebox-boot $(TARGET_DIR)/usr/libexec/officebox-boot
	$(INSTALL) -D -m 0644 $(OFFICEBOX_PKGDIR)/50-officebox-data.conf \
		$(TARGET_DIR)/usr/lib/repart.d/50-officebox-data.conf
endef

define OFFICEBOX_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(OFFICEBOX_PKGDIR)/officebox.service \
		$(TARGET_DIR)/usr/lib/systemd/system/officebox.service
endef

$(eval $(generic-package))
