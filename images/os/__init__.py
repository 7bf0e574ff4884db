"""The OfficeBox OS image: Debian 12 packages, A/B root slots, RAUC whole-system updates (images/os/build.py)."""
