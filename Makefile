# OfficeBox: the front door. `make run` and `make test` are all a newcomer needs (Debian 12, as root).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_LISTS := deps/debian-packages.txt $(wildcard services/*/debian-packages.txt)
APT_STAMP := $(VENV)/.apt-stamp
PIP_STAMP := $(VENV)/.pip-stamp
PYTEST_ARGS ?=

.PHONY: setup vendor run test test-fast bench lint clean image os-image image-test buildroot-image buildroot-src translations

# The browser phone's SIP library (webadmin/blueprints/webphone.py): SIP.js from the npm registry at a pinned
# version (fetched with curl: no npm needed), checked against the registry's integrity hash, its ES modules (no
# dependencies) served from static/vendor.
SIPJS_VERSION := 0.21.2
SIPJS_INTEGRITY := sha512-tSqTcIgrOd2IhP/rd70JablvAp+fSfLSxO4hGNY6LkWRY1SKygTO7OtJEV/BQb8oIxtMRx0LE7nUF2MaqGbFzA==
SIPJS_DIR := webadmin/static/vendor/sip.js
SIPJS_STAMP := $(SIPJS_DIR)/.version-$(SIPJS_VERSION)
# axe-core, for the accessibility test of every page (tests/webadmin/test_layout_a11y.py), the same way.
AXE_VERSION := 4.14.1
AXE_INTEGRITY := sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==
AXE_DIR := tests/webadmin/vendor/axe-core
AXE_STAMP := $(AXE_DIR)/.version-$(AXE_VERSION)

setup: $(APT_STAMP) $(PIP_STAMP) $(SIPJS_STAMP) $(AXE_STAMP)

vendor: $(SIPJS_STAMP) $(AXE_STAMP)

$(AXE_STAMP): $(APT_STAMP)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	tgz="$$tmp/axe-core-$(AXE_VERSION).tgz"; \
	curl -fsSL --retry 3 --max-time 120 -o "$$tgz" "https://registry.npmjs.org/axe-core/-/axe-core-$(AXE_VERSION).tgz"; \
	got="sha512-$$(openssl dgst -sha512 -binary "$$tgz" | base64 -w0)"; \
	if [ "$$got" != "$(AXE_INTEGRITY)" ]; then echo "axe-core $(AXE_VERSION): integrity mismatch ($$got)"; exit 1; fi; \
	rm -rf $(AXE_DIR); mkdir -p $(AXE_DIR); \
	tar xzf "$$tgz" -C $(AXE_DIR) --strip-components=1 package/axe.min.js package/LICENSE; \
	touch $@; echo "axe-core $(AXE_VERSION) in $(AXE_DIR)"

$(SIPJS_STAMP): $(APT_STAMP)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	tgz="$$tmp/sip.js-$(SIPJS_VERSION).tgz"; \
	curl -fsSL --retry 3 --max-time 120 -o "$$tgz" "https://registry.npmjs.org/sip.js/-/sip.js-$(SIPJS_VERSION).tgz"; \
	got="sha512-$$(openssl dgst -sha512 -binary "$$tgz" | base64 -w0)"; \
	if [ "$$got" != "$(SIPJS_INTEGRITY)" ]; then echo "sip.js $(SIPJS_VERSION): integrity mismatch ($$got)"; exit 1; fi; \
	rm -rf $(SIPJS_DIR); mkdir -p $(SIPJS_DIR); \
	tar xzf "$$tgz" -C $(SIPJS_DIR) --strip-components=2 --wildcards 'package/lib/*.js'; \
	tar xzf "$$tgz" -C $(SIPJS_DIR) --strip-components=1 package/LICENSE.md; \
	touch $@; echo "sip.js $(SIPJS_VERSION) in $(SIPJS_DIR)"

$(APT_STAMP): $(APT_LISTS)
	@mkdir -p $(VENV)
	@pkgs=$$(cat $(APT_LISTS) | sed 's/#.*//' | tr -s ' \n' ' '); \
	missing=$$(for p in $$pkgs; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@systemctl disable --now squid dnsmasq dovecot strongswan strongswan-starter ipsec pptpd kea-dhcp4-server kamailio 2>/dev/null || true
	@touch $@

# Every Python package at the version and hash of deps/requirements.lock (python3 deps/lock.py makes it).
$(PIP_STAMP): pyproject.toml deps/requirements.lock $(APT_STAMP)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r deps/requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@touch $@

run: setup
	$(BIN)/officebox run --lab

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench

# The web admin's catalogues (webadmin/i18n.py): extract the marked text, merge it into each language's .po
# (then translate the new entries), compile the .mo files the tree ships. tests/webadmin/test_i18n.py checks them.
translations: setup
	$(BIN)/pybabel -q extract -F babel.cfg -k N_ --no-location --sort-output -w 120 --project OfficeBox \
		--copyright-holder OfficeBox -o webadmin/translations/messages.pot .
	$(BIN)/pybabel -q update -N -w 120 --ignore-obsolete -i webadmin/translations/messages.pot -d webadmin/translations
	$(BIN)/pybabel compile -d webadmin/translations

lint: setup
	$(BIN)/ruff check appliance services webadmin tests bench images

image: setup
	$(MAKE) -C images

# The flashable disk image from Debian 12 packages (images/os/): images/out/os/officebox-<version>.img,
# and the signed whole-system update of the same root filesystem, officebox-<version>.raucb.
os-image: setup
	$(BIN)/python -m images.os.build

# The image booted in QEMU: boot, DHCP, a signed update, a broken one falling back, a tampered one
# refused, a power cut during an update (`make test` runs only the image tests without a VM).
image-test: setup
	OFFICEBOX_IMAGE_TEST=full $(BIN)/python -m pytest tests/images -v $(PYTEST_ARGS)

# The minimal alternative: Buildroot with our external tree (buildroot/), for builders with its sources.
BR_OUT := $(CURDIR)/images/out/buildroot
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

buildroot-src:
	@test -f "$(BUILDROOT_SRC)/Makefile" -a -d "$(BUILDROOT_SRC)/package" || { \
		echo "make buildroot-image BUILDROOT_SRC=/path/to/buildroot: a Buildroot release tree (https://buildroot.org)"; \
		exit 2; }

buildroot-image: buildroot-src image
	$(MAKE) -C $(BUILDROOT_SRC) O=$(BR_OUT) BR2_EXTERNAL=$(CURDIR)/buildroot officebox_x86_64_defconfig
	$(MAKE) -C $(BUILDROOT_SRC) O=$(BR_OUT)
	cp $(BR_OUT)/images/officebox.img images/out/officebox-$(VERSION).img
	@echo "images/out/officebox-$(VERSION).img: write it to the box's disk (dd, or the installer's USB stick)"

clean:
	rm -rf $(VENV) var .pytest_cache
