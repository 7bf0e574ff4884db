"""The Buildroot external tree agrees with the project: every runtime Python dependency of
pyproject.toml is built into the OS image (ours at exactly the pinned version, with a hash), every
file the recipes and the defconfig name exists, and the boot pieces name the same partitions."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "buildroot"
OFFICEBOX_CONFIG = (TREE / "package/officebox/Config.in").read_text()


def kconfig_symbol(package: str) -> str:
    return "BR2_PACKAGE_PYTHON_" + re.sub(r"[^A-Z0-9]", "_", package.upper())


def pinned_runtime_deps() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(dep.split("==") for dep in deps)


def test_every_runtime_dependency_is_selected_by_the_officebox_package():
    selected = set(re.findall(r"^\s*select (\S+)", OFFICEBOX_CONFIG, re.M))
    missing = [name for name in pinned_runtime_deps() if kconfig_symbol(name) not in selected]
    assert not missing, f"add these to buildroot/package/officebox/Config.in: {missing}"


def test_our_python_packages_are_the_pinned_versions_with_a_hash():
    pins = pinned_runtime_deps()
    ours = sorted((TREE / "package").glob("python-*"))
    assert ours
    for folder in ours:
        name = folder.name.removeprefix("python-")
        var = "PYTHON_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
        recipe = (folder / f"{folder.name}.mk").read_text()
        version = re.search(rf"^{var}_VERSION = (\S+)$", recipe, re.M).group(1)
        if name in pins:
            assert version == pins[name], f"{folder.name} builds {version}, pyproject pins {pins[name]}"
        hashes = (folder / f"{folder.name}.hash").read_text()
        assert re.search(rf"^sha256\s+[0-9a-f]{{64}}\s+{re.escape(name)}-{re.escape(version)}\.tar\.gz$", hashes, re.M)
        source = f'source "$BR2_EXTERNAL_OFFICEBOX_PATH/package/{folder.name}/Config.in"'
        assert source in (TREE / "Config.in").read_text()
        assert f"config {kconfig_symbol(name)}\n" in (folder / "Config.in").read_text()


def test_files_named_by_the_recipes_and_the_defconfig_exist():
    recipe = (TREE / "package/officebox/officebox.mk").read_text()
    named = re.findall(r"\$\(OFFICEBOX_PKGDIR\)/(\S+)", recipe)
    assert named and all((TREE / "package/officebox" / n).is_file() for n in named), named
    defconfig = (TREE / "configs/officebox_x86_64_defconfig").read_text()
    paths = re.findall(r"\$\(BR2_EXTERNAL_OFFICEBOX_PATH\)/([^\"\s]+)", defconfig)
    assert len(paths) >= 3 and all((TREE / p).is_file() for p in paths), paths
    for line in defconfig.splitlines():
        assert re.fullmatch(r"(BR2_\w+=(y|\"[^\"]*\")|# BR2_\w+ is not set|# .*|)", line), line
    scripts = ("board/officebox/post-build.sh", "board/officebox/post-image.sh", "package/officebox/officebox-boot")
    for script in scripts:
        assert (TREE / script).stat().st_mode & 0o111, f"{script} is not executable"
    assert (TREE / "external.desc").read_text().startswith("name: OFFICEBOX\n")


def test_boot_loader_fstab_and_disk_layout_name_the_same_partitions():
    genimage = (TREE / "board/officebox/genimage.cfg").read_text()
    partitions = re.findall(r"^\s*partition (\w+) \{", genimage, re.M)
    root = re.search(r"root=PARTLABEL=(\w+)", (TREE / "board/officebox/grub.cfg").read_text()).group(1)
    data = re.search(r"PARTLABEL=(\w+) /var/lib/officebox ",
                     (TREE / "board/officebox/post-build.sh").read_text()).group(1)
    repart = re.search(r"^Label=(\w+)$", (TREE / "package/officebox/50-officebox-data.conf").read_text(),
                       re.M).group(1)
    assert root in partitions and data in partitions and repart == data
    assert partitions[-1] == data, "the data partition must be last so it can grow over the disk"
