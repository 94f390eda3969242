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
from dataclasses import dataclass
from pathlib import Path

from core.config import ServerSettings, data_source
from core.data import HF_PREFIX

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
    this machine alone: 127.x, ::1 or localhost. Unset or 0.0.0.0 listens on every address."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: another machine may resolve it to this one


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
        return data_source(text)
    if not allowed.folders:
        raise DataAccessError("This server does not open folders typed here.")
    if allowed.root is None:
        return data_source(text)
    return str(inside(allowed.root, text))


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
    return folder
