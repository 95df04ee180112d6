"""What the image built from docker/Dockerfile contains, read from the Dockerfile itself.

No Docker engine here, so the image's file list is derived from the final
stage's instructions: ``WORKDIR``, each ``COPY`` (sources expanded from the
repository, minus what the build context's ignore file excludes), the
directories ``RUN mkdir -p`` creates and the strategy file ``RUN signal-bridge
install-strategy --userdir DIR`` writes. Its console scripts are the package's
(installed from the wheel) plus ``freqtrade`` and ``python``. Imported by
basename from the deployment tests.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
IGNORE_FILE = REPO / "docker" / "Dockerfile.dockerignore"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """``[(KEYWORD, rest)]`` with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def stages(path: Path = DOCKERFILE) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (``FROM`` starts one)."""
    out: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            out.append([])
        out[-1].append((keyword, rest))
    return out


def ignored(rel: str) -> bool:
    """Whether the build context's ignore file keeps ``rel`` (a repo-relative path) out."""
    verdict = False
    for raw in IGNORE_FILE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = PurePosixPath(rel).parts
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(p, pattern) or (pattern.startswith("**/")
                                               and fnmatch.fnmatch(p.split("/")[-1],
                                                                   pattern[3:]))
               for p in prefixes):
            verdict = not negate
    return verdict


@dataclass
class Image:
    files: dict[str, Path] = field(default_factory=dict)  # image path -> repo file
    generated: set[str] = field(default_factory=set)  # files written at build time
    dirs: set[str] = field(default_factory=set)
    copied_sources: list[str] = field(default_factory=list)  # repo-relative COPY sources
    scripts: set[str] = field(default_factory=set)

    def has(self, path: str) -> bool:
        path = str(PurePosixPath(path))
        return (path in self.files or path in self.generated or path in self.dirs
                or any(f.startswith(path + "/") for f in (*self.files, *self.generated)))


def _copy(image: Image, workdir: str, rest: str) -> None:
    args = shlex.split(rest)
    if any(a.startswith("--from") for a in args):
        return  # from another stage (the wheel: installed into site-packages)
    *sources, dest = [a for a in args if not a.startswith("--")]
    dest_abs = PurePosixPath(workdir) / dest
    into_dir = dest.endswith("/") or len(sources) > 1
    for source in sources:
        image.copied_sources.append(source)
        host = REPO / source
        if host.is_dir():
            for file in sorted(p for p in host.rglob("*") if p.is_file()):
                rel = file.relative_to(REPO).as_posix()
                if ignored(rel) or "__pycache__" in file.parts:
                    continue
                inner = file.relative_to(host).as_posix()
                image.files[str(dest_abs / inner)] = file
        elif host.is_file() and not ignored(source):
            target = dest_abs / host.name if into_dir else dest_abs
            image.files[str(target)] = host


def image_contents(path: Path = DOCKERFILE) -> Image:
    """The files, directories and console scripts of the final stage."""
    image = Image()
    workdir = "/"
    for keyword, rest in stages(path)[-1]:
        if keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / rest)
            image.dirs.add(workdir)
        elif keyword == "COPY":
            _copy(image, workdir, rest)
        elif keyword == "RUN":
            for command in re.split(r"&&|;", rest):
                words = shlex.split(command)
                if words[:2] == ["mkdir", "-p"]:
                    image.dirs.update(w for w in words[2:] if w.startswith("/"))
                if words[:2] == ["signal-bridge", "install-strategy"]:
                    userdir = words[words.index("--userdir") + 1]
                    image.generated.add(f"{userdir}/strategies/ExternalSignalStrategy.py")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    image.scripts = set(project["scripts"]) | {"freqtrade", "python"}
    return image
