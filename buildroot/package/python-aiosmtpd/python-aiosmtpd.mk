################################################################################
#
# python-aiosmtpd (pinned to the version in OfficeBox's pyproject.toml)
#
################################################################################

PYTHON_AIOSMTPD_VERSION = 1.4.6
PYTHON_AIOSMTPD_SOURCE = aiosmtpd-$(PYTHON_AIOSMTPD_VERSION).tar.gz
PYTHON_AIOSMTPD_SITE = https://files.pythonhosted.org/packages/source/a/aiosmtpd
PYTHON_AIOSMTPD_SETUP_TYPE = setuptools
PYTHON_AIOSMTPD_LICENSE = Apache-2.0
PYTHON_AIOSMTPD_LICENSE_FILES = LICENSE

$(eval $(python-package))
