"""Fetch the vendored web assets again from the npm registry and rebuild the DVC plots template.

Usage, from the project root (needs ``npm`` and the npm registry, not the CDNs)::

    python -m pixelflip.reports.vendor                  # re-fetch; fail if a sha256 differs
    python -m pixelflip.reports.vendor --update-sha256  # after editing manifest.json

Each package of ``assets/manifest.json`` is fetched with ``npm pack <package>@<version>`` and
the listed files are copied unmodified out of the tarball; files under ``assets/`` that the
manifest no longer lists are removed. To add an asset (say a Great Expectations upgrade loads
a new CDN address), add its package, version, file path and the address to the manifest with
an empty sha256 and run with ``--update-sha256``; npm versions never change, so a differing
sha256 without that flag means the manifest and the files disagree.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from pixelflip.reports.assets import (
    ASSETS_DIR,
    MANIFEST_PATH,
    VENDOR_COMMAND,
    VendoredPackage,
    file_sha256,
    read_manifest,
)
from pixelflip.reports.dvc_template import write_template


def fetch_package(package: VendoredPackage, scratch: Path) -> None:
    """Copy ``package``'s listed files out of its npm tarball into ``ASSETS_DIR``."""
    npm = shutil.which("npm")
    if npm is None:
        raise ValueError("npm not found: install Node.js (it brings npm) to fetch the assets.")
    destination = scratch / f"{package.npm.replace('/', '_')}-{package.version}"
    destination.mkdir(parents=True)
    subprocess.run([npm, "pack", f"{package.npm}@{package.version}", "--silent",
                    "--pack-destination", str(destination)], check=True, capture_output=True)
    (tarball,) = destination.glob("*.tgz")
    with tarfile.open(tarball) as archive:
        for file in package.files:
            # npm tarballs hold the package below a folder named "package".
            member = archive.extractfile(f"package/{file.path}")
            if member is None:
                raise ValueError(f"{package.npm}@{package.version} has no file {file.path}; "
                                 f"fix its path in {MANIFEST_PATH}.")
            file.local_path.parent.mkdir(parents=True, exist_ok=True)
            file.local_path.write_bytes(member.read())


def _remove_unlisted(listed: set[Path]) -> list[Path]:
    unlisted = [path for path in ASSETS_DIR.rglob("*")
                if path.is_file() and path != MANIFEST_PATH and path not in listed]
    for path in unlisted:
        path.unlink()
    for folder in sorted((path for path in ASSETS_DIR.rglob("*") if path.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return unlisted


def _record_sha256() -> None:
    """Write each vendored file's sha256 into the manifest, keeping everything else."""
    raw = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    manifest = read_manifest()
    for raw_package, package in zip(raw["packages"], manifest.packages):
        for raw_file, file in zip(raw_package["files"], package.files):
            raw_file["sha256"] = file_sha256(file.local_path)
    MANIFEST_PATH.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n",
                             encoding="utf-8")


def vendor(update_sha256: bool = False) -> None:
    """Fetch every package, check (or record) the sha256s, rewrite the DVC plots template.

    Raises:
        ValueError: if a fetched file's sha256 is not the manifest's and ``update_sha256`` is
            False.
    """
    manifest = read_manifest()
    with tempfile.TemporaryDirectory(prefix="pixelflip-vendor-") as scratch:
        for package in manifest.packages:
            fetch_package(package, Path(scratch))
            print(f"[vendor] {package.npm}@{package.version}: "
                  f"{', '.join(file.path for file in package.files)}", flush=True)
    for path in _remove_unlisted({file.local_path for file in manifest.files}):
        print(f"[vendor] removed {path.relative_to(ASSETS_DIR)}: not in the manifest", flush=True)
    if update_sha256:
        _record_sha256()
    else:
        differing = [str(file.relative) for file in manifest.files
                     if file_sha256(file.local_path) != file.sha256]
        if differing:
            raise ValueError(f"{', '.join(differing)} differ from the sha256 in "
                             f"{MANIFEST_PATH}; run `{VENDOR_COMMAND} --update-sha256` if "
                             "the manifest was edited on purpose.")
    template = write_template()
    total = sum(file.local_path.stat().st_size for file in read_manifest().files)
    print(f"[vendor] {len(manifest.files)} files, {total / 1e6:.2f} MB; wrote {template}",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-sha256", action="store_true",
                        help="record the fetched files' sha256 in the manifest")
    vendor(update_sha256=parser.parse_args(argv).update_sha256)


if __name__ == "__main__":
    main()
