"""Build the OfficeBox OS image from Debian 12 packages: `make os-image`.

    python -m images.os.build                      -> images/out/os/officebox-<version>.img and .raucb
    python -m images.os.build --bundle X.obfw --name test-2   (another root filesystem, as an update)

Steps: the signed application bundle (`make image`) -> mmdebstrap a minimal bookworm root filesystem
(images/os/packages.txt, no docs, trimmed kernel modules) -> the appliance venv from the wheels of
deps/requirements.lock (runtime packages only, pip --require-hashes, no compiler) and the factory
firmware -> squashfs (xz; OFFICEBOX_IMAGE_COMPRESSION=gzip builds faster) -> a GPT disk (EFI system
partition with GRUB, root slots A and B, data) and a RAUC bundle of the same root filesystem, signed.
Debian packages and wheels are cached in $OFFICEBOX_IMAGE_CACHE (/var/cache/officebox-image); a build
whose inputs did not change is reused.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from images.os import layout, signing

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("OFFICEBOX_IMAGE_CACHE", "/var/cache/officebox-image"))
OUT = ROOT / "images" / "out" / "os"
LAUNCHER = ROOT / "buildroot" / "package" / "officebox"  # officebox-boot, its unit, the repart definition
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")  # the build machine's Debian mirror
DPKG_EXCLUDES = [  # no docs, and no kernel modules for hardware an office appliance does not have
    "/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
    "/usr/share/lintian/*", "/usr/share/bash-completion/*",
    *(f"/lib/modules/*/kernel/{d}/*" for d in (
        "sound", "drivers/gpu", "drivers/media", "drivers/infiniband", "drivers/iio", "drivers/staging",
        "drivers/comedi", "drivers/isdn", "drivers/net/wireless", "drivers/bluetooth", "drivers/target",
        "drivers/mtd", "drivers/input/touchscreen", "drivers/input/joystick", "net/mac80211",
        "net/wireless", "net/bluetooth")),
]
KEEP = ["/usr/share/doc/*/copyright"]
PPTP_SECRETS = "/var/lib/officebox/etc/current/vpn/chap-secrets"  # appliance.context: the vpn service's etc
# the root filesystem's compression: xz (smallest; releases) or gzip (level 6: several times faster to
# build, a bigger image; the image tests in `make test` use it to fit CI's time). GRUB reads the kernel
# from the slot's squashfs: it knows gzip, lzo and xz, not zstd or lz4.
COMPRESSION = {"xz": ["-comp", "xz"], "gzip": ["-comp", "gzip", "-Xcompression-level", "6"]}


def run(*argv, **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(str(a) for a in argv), flush=True)
    return subprocess.run([str(a) for a in argv], check=True, **kw)


def version() -> str:
    import tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def runtime_lock() -> str:
    """The lines of deps/requirements.lock for what the appliance imports (pyproject's dependencies
    and theirs), hashes kept: test tools (pytest, playwright, ruff...) stay off the box."""
    import re
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    wanted, todo = set(), [re.split(r"[=<>!~ ;\[]", d)[0] for d in
                           tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    while todo:
        name = norm(todo.pop())
        if name in wanted:
            continue
        wanted.add(name)
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    blocks = (ROOT / "deps" / "requirements.lock").read_text().split("\n")
    out, keep = [], False
    for line in blocks:
        if line and not line.startswith((" ", "#")):
            keep = norm(line.split("==")[0]) in wanted | {"pip"}
        if keep:
            out.append(line)
    return "\n".join(out) + "\n"


def fetch_wheels(lock: str) -> Path:
    """Download (once) the wheels of the runtime lock, hash-checked, into the cache."""
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    (wheels / "runtime.lock").write_text(lock)
    # this build machine is the box's platform (Debian 12, x86-64, CPython 3.11): its wheels fit
    run(sys.executable, "-m", "pip", "download", "-q", "--require-hashes", "--only-binary=:all:", "--no-deps",
        "-d", wheels, "-r", wheels / "runtime.lock")
    return wheels


def bundle_digest(bundle: Path) -> str:
    """The application bundle's files (names and contents; not its signing time)."""
    import io
    import tarfile

    digest = hashlib.sha256()
    with tarfile.open(bundle) as outer:
        payload = outer.extractfile("payload.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
        for info in sorted(tar.getmembers(), key=lambda i: i.name):
            digest.update(info.name.encode() + b"\0" + tar.extractfile(info).read())
    return digest.hexdigest()


def input_digest(bundle: Path, trust: Path, name: str, base: str) -> str:
    """What the root filesystem is made of: a changed input means a new build."""
    digest = hashlib.sha256(f"{name}\0{base}\0{compression()}\0{bundle_digest(bundle)}".encode())
    paths = [HERE / "packages.txt", HERE / "build.py", HERE / "layout.py", HERE / "grub.cfg",
             ROOT / "appliance" / "serviceusers.py",  # the accounts made at build time
             ROOT / "deps" / "requirements.lock", *sorted(LAUNCHER.glob("officebox*")),
             *sorted(p for p in (HERE / "rootfs").rglob("*") if p.is_file())]
    for path in paths:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    for key in (signing.keyring(), *sorted(trust.glob("*.pub"))):  # the keys the box will trust
        digest.update(key.read_bytes())
    return digest.hexdigest()[:16]


def debian_packages() -> list[str]:
    lines = (HERE / "packages.txt").read_text().splitlines()
    return [w for line in lines for w in line.split("#")[0].split()]


def packages_tree() -> Path:
    """The Debian packages of packages.txt installed (mmdebstrap), cached by what they are made of."""
    early = sorted(p for p in (HERE / "rootfs" / "etc" / "initramfs-tools").rglob("*") if p.is_file())
    digest = hashlib.sha256("\0".join([*debian_packages(), *DPKG_EXCLUDES, *KEEP]).encode())
    for path in early:
        digest.update(path.read_bytes())
    tree = CACHE / "packages" / digest.hexdigest()[:16]
    if (tree / "root" / "usr" / "bin" / "rauc").exists():
        return tree / "root"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    apt_cache = CACHE / "apt"
    apt_cache.mkdir(parents=True, exist_ok=True)
    me = f"cd {ROOT} && {sys.executable} -m images.os.build"
    run("mmdebstrap", "--variant=minbase", "--include=" + ",".join(debian_packages()),
        "--aptopt=APT::Install-Recommends \"false\"", "--skip=essential/unlink",
        *(f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES),
        *(f"--dpkgopt=path-include={p}" for p in KEEP),
        "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives",
        f"--setup-hook=sync-in {apt_cache} /var/cache/apt/archives/",
        f"--setup-hook={me} early-files \"$1\"",  # before the kernel: the initramfs hooks
        f"--customize-hook=sync-out /var/cache/apt/archives {apt_cache}",
        "bookworm", tree / "root", SOURCES)
    for old in sorted((CACHE / "packages").iterdir(), key=lambda p: p.stat().st_mtime)[:-2]:
        shutil.rmtree(old, ignore_errors=True)
    return tree / "root"


class Chroot:
    """/dev and /proc of the build machine mounted in a root filesystem while Python runs in it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __enter__(self) -> Chroot:
        run("mount", "--bind", "/dev", self.root / "dev")
        run("mount", "-t", "proc", "proc", self.root / "proc")
        return self

    def __exit__(self, *exc) -> None:
        for mount in ("proc", "dev"):
            subprocess.run(["umount", str(self.root / mount)], check=False)

    def run(self, *argv) -> None:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "PIP_CONFIG_FILE": "/dev/null"}
        run("chroot", self.root, *argv, env=env)


def copy_tree_files(root: Path, only: str | None = None) -> None:
    """images/os/rootfs/ into the root filesystem, the partition UUIDs filled in."""
    src = HERE / "rootfs"
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if only and not str(rel).startswith(only):
            continue
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)
        dest.write_text(layout.fill(path.read_text()))
        dest.chmod(path.stat().st_mode & 0o777)


def customize(root: Path, wheels: Path, bundle: Path, trust: Path, build_id: str) -> None:
    """Everything that makes the packages tree (a hard-linked copy: files are replaced, never
    written in place) an OfficeBox: our files, the venv, the factory firmware, the units."""
    copy_tree_files(root)
    venv = "/usr/lib/officebox/venv"
    staged = root / "tmp" / "wheels"
    shutil.copytree(wheels, staged, dirs_exist_ok=True)
    pip = next(p.name for p in staged.glob("pip-*.whl"))
    with Chroot(root) as chroot:
        chroot.run("python3", "-m", "venv", "--without-pip", venv)
        chroot.run(f"{venv}/bin/python", f"/tmp/wheels/{pip}/pip", "install", "-q", "--no-index", "--no-compile",
                   "--find-links", "/tmp/wheels", "--require-hashes", "-r", "/tmp/wheels/runtime.lock")
        chroot.run(f"{venv}/bin/python", "-m", "pip", "uninstall", "-q", "-y", "pip")
        chroot.run(f"{venv}/bin/python", "-m", "compileall", "-q", venv)
    shutil.rmtree(staged)
    install_firmware(root, bundle, trust, build_id)
    for name, mode in (("officebox-boot", 0o755), ("officebox.service", 0o644)):
        dest = root / ("usr/libexec" if mode == 0o755 else "usr/lib/systemd/system") / name
        shutil.copy(LAUNCHER / name, dest)
        dest.chmod(mode)
    (root / "usr/lib/repart.d").mkdir(parents=True, exist_ok=True)
    shutil.copy(LAUNCHER / "50-officebox-data.conf", root / "usr/lib/repart.d")
    shutil.copy(signing.keyring(), root / "etc/rauc/keyring.pem")
    # pppd reads its secrets from /etc/ppp/chap-secrets only: the VPN service's rendered PPTP logins (0600)
    (root / "etc/ppp/chap-secrets").unlink(missing_ok=True)
    (root / "etc/ppp/chap-secrets").symlink_to(PPTP_SECRETS)
    (root / "etc/hostname").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("officebox\n")
    for d in ("boot/efi", "var/lib/officebox"):
        (root / d).mkdir(parents=True, exist_ok=True)
    with Chroot(root) as chroot:
        # the running box's /etc is read-only to the appliance: the mail owner (vmail), the service
        # processes' users and groups (appliance/serviceusers.py) exist from the start
        for argv in accounts():
            chroot.run(*argv)
        chroot.run("systemctl", "enable", "-q", "officebox.service", "officebox-slot-good.path",
                   "officebox-boot-deadline.service")
        chroot.run("systemctl", "mask", "-q", "squid.service", "dovecot.service", "chrony.service",
                   "strongswan.service", "coturn.service", "pptpd.service",  # the appliance runs its own daemons
                   "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_reap.service",
                   "systemd-repart.service")  # the data partition grows with officebox-grow-data instead
    for link in ("vmlinuz", "initrd.img"):  # GRUB reads them from the slot
        if not (root / link).exists():
            raise SystemExit(f"images.os.build: the root filesystem has no /{link}")


def accounts() -> list[list[str]]:
    """groupadd/useradd commands of the box's system accounts: vmail and appliance/serviceusers.py's."""
    from appliance.serviceusers import SERVICE_GROUPS, SERVICE_USERS

    user = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
            "--shell", "/usr/sbin/nologin"]
    return ([["groupadd", "--system", group] for group in SERVICE_GROUPS]
            + [[*user, "--comment", "OfficeBox service", name] for name in SERVICE_USERS]
            + [[*user, "vmail"]])


def install_firmware(root: Path, bundle: Path, trust: Path, build_id: str) -> None:
    """The application bundle as the factory firmware, and what names this root filesystem's build."""
    from images.factory import install_factory

    for old in ("usr/lib/officebox/slots", "usr/lib/officebox/current", "usr/lib/officebox/previous",
                "etc/officebox/trusted-keys", "usr/lib/officebox/os-version", "usr/lib/officebox/os-build"):
        shutil.rmtree(root / old, ignore_errors=True)  # never write through a hard link of the base build
        (root / old).unlink(missing_ok=True)
    manifest = install_factory(bundle, root, [trust])
    with Chroot(root) as chroot:
        chroot.run("/usr/lib/officebox/venv/bin/python", "-m", "compileall", "-q", "/usr/lib/officebox/current/")
    (root / "usr/lib/officebox/os-version").write_text(manifest["version"] + "\n")
    (root / "usr/lib/officebox/os-build").write_text(build_id + "\n")
    # the factory tree is not pip-installed: its version for importlib.metadata (appliance.__version__)
    site = next((root / "usr/lib/officebox/venv/lib").glob("python3*/site-packages"))
    for old in site.glob("officebox-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"officebox-{manifest['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: officebox\nVersion: {manifest['version']}\n")
    (info / "INSTALLER").write_text("images.os.build\n")


def compression() -> str:
    name = os.environ.get("OFFICEBOX_IMAGE_COMPRESSION", "xz")
    if name not in COMPRESSION:
        raise SystemExit(f"OFFICEBOX_IMAGE_COMPRESSION={name}: choose one of {', '.join(COMPRESSION)}")
    return name


def squashfs(root: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    run("mksquashfs", root, target, *COMPRESSION[compression()], "-noappend", "-no-progress", "-quiet",
        "-e", "var/cache/apt", "var/lib/apt/lists")


def build_rootfs(bundle: Path, trust: Path, name: str, base: str = "") -> tuple[Path, str]:
    """The root filesystem image (squashfs) for this bundle, built or taken from the cache. With
    `base` (a build id) it is that build's tree with this bundle as the factory firmware instead."""
    build_id = f"{name}-{input_digest(bundle, trust, name, base)}"
    work = CACHE / "builds" / build_id
    image = work / "rootfs.img"
    if image.exists() and (base or (work / "root").is_dir()):
        print(f"root filesystem {build_id}: cached ({image})")
        return image, build_id
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if base:
        run("cp", "-al", CACHE / "builds" / base / "root", work / "root")
        install_firmware(work / "root", bundle, trust, build_id)
    else:
        packages = packages_tree()
        run("cp", "-al", packages, work / "root")
        customize(work / "root", fetch_wheels(runtime_lock()), bundle, trust, build_id)
    squashfs(work / "root", work / "rootfs.partial")
    if base:
        shutil.rmtree(work / "root")  # the base build keeps its tree for the next variant
    (work / "rootfs.partial").rename(image)
    for old in sorted((CACHE / "builds").iterdir(), key=lambda p: p.stat().st_mtime)[:-6]:
        shutil.rmtree(old, ignore_errors=True)  # keep the last few builds only
    return image, build_id


def app_bundle() -> tuple[Path, Path]:
    """The signed application bundle of `make image`, and the folder of the key that signed it."""
    run(sys.executable, "-m", "images.build", cwd=ROOT)
    return ROOT / "images" / "out" / f"officebox-{version()}.obfw", ROOT / "images" / "out"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="images.os.build", description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", choices=["all", "early-files"], default="all")
    parser.add_argument("root", nargs="?", type=Path, help="the root filesystem (mmdebstrap hooks)")
    parser.add_argument("--bundle", type=Path, help="the application bundle (default: `make image`)")
    parser.add_argument("--trust", type=Path, help="the folder of the key that signed --bundle")
    parser.add_argument("--name", default="variant", help="names the root filesystem made with --bundle")
    parser.add_argument("--no-disk", action="store_true", help="only the update bundle (.raucb)")
    args = parser.parse_args(argv)
    if args.step == "early-files":  # before the packages: the initramfs hooks for the overlay root
        copy_tree_files(args.root, only="etc/initramfs-tools")
        return 0
    started = time.monotonic()
    app, app_trust = app_bundle()
    rootfs, build_id = build_rootfs(app.resolve(), app_trust.resolve(), "officebox")
    bundle = app
    if args.bundle:  # another root filesystem: the base one with this application bundle
        bundle = args.bundle.resolve()
        rootfs, build_id = build_rootfs(bundle, (args.trust or args.bundle.parent).resolve(), args.name, build_id)
    OUT.mkdir(parents=True, exist_ok=True)
    fw_version = json.loads(subprocess.run(["tar", "-xOf", bundle, "manifest.json"], check=True,
                                           capture_output=True).stdout)["version"]
    stem = OUT / (f"{args.name}-{fw_version}" if args.bundle else f"officebox-{fw_version}")
    raucb = signing.rauc_bundle(rootfs, fw_version, build_id, stem.parent / f"{stem.name}.raucb")
    report = {"build": build_id, "rootfs_bytes": rootfs.stat().st_size, "bundle": str(raucb),
              "bundle_bytes": raucb.stat().st_size}
    if not args.no_disk:
        disk = layout.disk_image(rootfs, stem.parent / f"{stem.name}.img", CACHE / "builds" / build_id)
        report.update(disk=str(disk), disk_bytes=disk.stat().st_size,
                      disk_allocated_bytes=disk.stat().st_blocks * 512)
    report["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report, indent=1))
    (stem.parent / f"{stem.name}.build.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
