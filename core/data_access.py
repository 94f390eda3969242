"""What a visitor may make the server read: the data sources typed into the sidebar's
training form (issue 31).

A shared server must not read any folder a visitor names, nor tell them which paths exist, nor
download whatever Hugging Face data set they type. The host decides:

- **folders**: inside the host's data root only (``--data-root DIR``), resolved with their
  links before the check; with no root, only on a server that listens on the loopback address
  alone (one person on their own machine); never with ``--no-typed-data``;
- **hf:NAME**: the host's switch (``--typed-hf``, ``--no-typed-hf``); unset, only on a server
  that listens on the loopback address alone;
- files of a typed folder are read in bounded chunks and refused past
  ``core.data.TYPED_MAX_BYTES`` (see ``core.data.load_mnist``).

The host's own sources (``--data``, ``--net``, the cached models' data) are trusted as before.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from core.config import ServerSettings, data_source
from core.data import CLASSES_FILE, HF_PREFIX, IDX_FILES

# One sentence for every refused folder: outside the root, a link out of it, missing, not a
# folder. Never "missing" against "not allowed", which would tell a visitor what exists.
REFUSED = "Only folders inside the server's data folder can be opened."


class DataAccessError(ValueError):
    """A typed source this server does not open; the message is safe to show a visitor."""


@dataclass(frozen=True)
class TypedSources:
    """Which typed sources a server's visitors may use, and why, in sentences for its sidebar."""

    folders: bool
    root: Path | None  # folders must lie inside it; None: any folder (a loopback-only server)
    hugging_face: bool
    why: str

    @property
    def any(self) -> bool:
        return self.folders or self.hugging_face


def is_loopback(address: str | None) -> bool:
    """Whether a server listening on ``address`` (Streamlit's server.address) is reachable from
    this machine alone: 127.x, ::1 or localhost. Unset or 0.0.0.0 listens on every address. (A
    proxy on this machine forwards others to a loopback server: the dashboard passes no address
    for a request that came through one, see ``dashboard.cache.typed_sources``.)"""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: another machine may resolve it to this one


FORWARDED = ("forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host")  # a proxy's marks on a request


def forwarded(headers) -> bool:
    """Whether a request came through a proxy (nginx, JupyterHub's): a loopback server behind
    one serves other machines, so its visitors count as remote. ``headers``: a mapping."""
    return any(value for name, value in (headers or {}).items() if name.lower() in FORWARDED)


def typed_sources(settings: ServerSettings, address: str | None) -> TypedSources:
    """What the host's settings and the listening address allow visitors to type."""
    if not settings.typed_data:
        return TypedSources(False, None, False, "Typed data sources are off on this server (its host's choice).")
    alone = is_loopback(address)
    if settings.data_root:
        folders, root = True, Path(settings.data_root)
        said = "Typed folders: inside the server's data folder, named from it (e.g. fashion)."
    elif alone:
        folders, root = True, None
        said = "Typed folders: any, since this server listens on this machine alone."
    else:
        folders, root = False, None
        said = (
            "Typed folders are off: this server is reachable from other machines and its host named no data "
            "folder (--data-root)."
        )
    hugging_face = alone if settings.typed_hf is None else settings.typed_hf
    if not folders and not hugging_face and settings.typed_hf is None:  # both off for one reason: said once
        return TypedSources(
            False,
            None,
            False,
            "Typed folders and Hugging Face data sets are off: this server is reachable from other machines. Its "
            "host can open folders inside one data folder (--data-root) and Hugging Face downloads (--typed-hf).",
        )
    if hugging_face:
        said += " Hugging Face data sets (hf:NAME) may be downloaded."
    elif settings.typed_hf is False:
        said += " Hugging Face data sets are off (its host's choice)."
    else:
        said += " Hugging Face data sets are off: this server is reachable from other machines (--typed-hf opens them)."
    return TypedSources(folders, root, hugging_face, said)


def typed_source(text: str, allowed: TypedSources) -> str:
    """The data source a visitor typed, as ``core.config.data_source`` writes it, once the host's
    rules allow it; raises DataAccessError with a sentence that reveals nothing about the disk."""
    text = text.strip()
    if text.startswith(HF_PREFIX):
        if not allowed.hugging_face:
            raise DataAccessError("This server does not download Hugging Face data sets typed here.")
        return hub_source(text[len(HF_PREFIX) :])
    if not allowed.folders:
        raise DataAccessError("This server does not open folders typed here.")
    if allowed.root is None:
        return data_source(text)
    return str(inside(allowed.root, text))


# A Hugging Face Hub id: NAME or OWNER/NAME. datasets.load_dataset also opens a local folder or
# file by that name, so a typed name that could be a path is refused like one.
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
NOT_A_HUB_ID = "Only a Hugging Face data set's name can be typed here, like hf:fashion_mnist or hf:ylecun/mnist."


def hub_source(name: str) -> str:
    """``hf:NAME`` for a Hub id that names nothing on this machine; else DataAccessError, the same
    sentence whether or not such a path exists here."""
    if not HUB_ID.fullmatch(name) or ".." in name or _exists(name):
        raise DataAccessError(NOT_A_HUB_ID)
    return f"{HF_PREFIX}{name}"


def _exists(name: str) -> bool:
    try:
        return Path(name).exists()
    except OSError:
        return True


def inside(root: Path, typed: str) -> Path:
    """``typed`` (relative to ``root``, or absolute) as a real folder inside ``root``, every link
    resolved first; else DataAccessError(REFUSED), the same for every reason."""
    try:
        real_root = root.resolve(strict=True)
        folder = (real_root / Path(typed).expanduser()).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a loop of links, a NUL byte
        raise DataAccessError(REFUSED) from None
    if not folder.is_relative_to(real_root) or not folder.is_dir():
        raise DataAccessError(REFUSED)
    for name in _DATA_FILES:  # a file in it may be a link out of the root too
        try:
            if (folder / name).exists() and not (folder / name).resolve(strict=True).is_relative_to(real_root):
                raise DataAccessError(REFUSED)
        except (OSError, RuntimeError):
            raise DataAccessError(REFUSED) from None
    return folder


_DATA_FILES = [CLASSES_FILE] + [f"{name}{gz}" for pair in IDX_FILES.values() for name in pair for gz in ("", ".gz")]
