################################################################################
#
# python-holidays (pinned to the version in OfficeBox's pyproject.toml)
#
################################################################################

PYTHON_HOLIDAYS_VERSION = 0.108
PYTHON_HOLIDAYS_SOURCE = holidays-$(PYTHON_HOLIDAYS_VERSION).tar.gz
PYTHON_HOLIDAYS_SITE = https://files.pythonhosted.org/packages/source/h/holidays
PYTHON_HOLIDAYS_SETUP_TYPE = setuptools
PYTHON_HOLIDAYS_LICENSE = MIT
PYTHON_HOLIDAYS_LICENSE_FILES = LICENSE

$(eval $(python-package))
