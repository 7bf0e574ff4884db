################################################################################
#
# python-dnslib (pinned to the version in OfficeBox's pyproject.toml)
#
################################################################################

PYTHON_DNSLIB_VERSION = 0.9.26
PYTHON_DNSLIB_SOURCE = dnslib-$(PYTHON_DNSLIB_VERSION).tar.gz
PYTHON_DNSLIB_SITE = https://files.pythonhosted.org/packages/source/d/dnslib
PYTHON_DNSLIB_SETUP_TYPE = setuptools
PYTHON_DNSLIB_LICENSE = BSD-2-Clause
PYTHON_DNSLIB_LICENSE_FILES = LICENSE

$(eval $(python-package))
