"""Which archive members the validate stage inspects: the chosen class folders, and a seeded
per-class subset. Members left out are recorded as ``skipped`` without being read, so a quick
run on 200 photos of a 25,000-photo archive costs 200 decodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pixelflip.config.checks import check_integer
from pixelflip.data.archive import ArchiveMember, is_image_name
from pixelflip.data.inspect import blank_record


@dataclasses.dataclass(frozen=True)
class MemberSelection:
    """Which class folders are used, under which labels, and how many images of each.

    Attributes:
        classes: ``{folder name: label}``: only these class folders are used, under these
            labels (several folders may share a label); None (the default) uses every folder
            as its own class.
        max_images_per_class: a seeded random subset of this many image files per class (an
            integer >= 1) is inspected and the others are ``skipped``; None (the default)
            inspects all.

    Raises:
        ValueError: ``classes`` that is not a mapping, or ``max_images_per_class`` that is not
            an integer >= 1.
    """

    classes: Mapping[str, str] | None = None
    max_images_per_class: int | None = None

    def __post_init__(self) -> None:
        if self.classes is not None and not isinstance(self.classes, Mapping):
            raise ValueError(
                f"classes must map folder names to labels or be None, got {self.classes!r}."
            )
        if self.max_images_per_class is not None:
            check_integer("max_images_per_class", self.max_images_per_class, minimum=1)


def select_members(
    archive_path: Path,
    members: list[ArchiveMember],
    selection: MemberSelection,
    random_state: int,
) -> tuple[list[ArchiveMember], list[dict]]:
    """Members to inspect (labelled with their class), and manifest rows for the others.

    Args:
        archive_path: the archive (named in errors).
        members: its members, sorted by path.
        selection: the class folders and the number of images per class to keep.
        random_state: seed of the subset.

    Returns:
        ``(selected, excluded)``: members to inspect, sorted by path, with ``label`` mapped;
        and one ``skipped`` manifest row (a dict with the manifest's columns) per member
        left out.

    A member outside the ``classes`` folders, or an image left out of the per-class subset, is
    ``skipped`` without being read. The subset is drawn per class in sorted class order from
    one seeded generator, so the same archive, classes and seed give the same subset.
    """
    classes, max_images_per_class = selection.classes, selection.max_images_per_class
    if classes is not None:
        folders = {member.label for member in members if member.label}
        missing = sorted(set(classes) - folders)
        if missing:
            raise ValueError(
                f"data.classes names folder(s) {missing} that {archive_path.name} does not "
                f"have; class folders found: {sorted(folders)}. Use those names as the keys."
            )
    selected, excluded = [], []
    by_class: dict[str, list[ArchiveMember]] = {}
    for member in members:
        if classes is not None and member.label:
            if member.label not in classes:
                excluded.append(skipped_row(member, f"class not selected: {member.label}"))
                continue
            member = dataclasses.replace(member, label=classes[member.label])
        if member.label and is_image_name(member.path):
            by_class.setdefault(member.label, []).append(member)
        else:
            selected.append(member)
    rng = np.random.default_rng(random_state)
    for label in sorted(by_class):
        images = by_class[label]
        keep = range(len(images))
        if max_images_per_class is not None and len(images) > max_images_per_class:
            keep = rng.choice(len(images), size=max_images_per_class, replace=False)
        chosen = {int(index) for index in keep}
        for index, member in enumerate(images):
            if index in chosen:
                selected.append(member)
            else:
                reason = f"not in subset: max_images_per_class {max_images_per_class}"
                excluded.append(skipped_row(member, reason))
    selected.sort(key=lambda member: member.path)
    return selected, excluded


def skipped_row(member: ArchiveMember, reason: str) -> dict:
    """The manifest row of a member skipped without being read."""
    record = blank_record(bytes=member.size, status="skipped", reason=reason)
    return {"path": member.path, "label": member.label, **record, "split": ""}
