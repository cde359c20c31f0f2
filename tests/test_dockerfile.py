"""Static checks of the Dockerfile and .dockerignore (there is no Docker engine in CI).

Each check is a function returning the problems it finds, run on the real Dockerfile (no
problems expected) and on small bad Dockerfiles (problems expected), so a check that can
never fail is noticed.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

Instruction = tuple[str, str]  # (KEYWORD, arguments)

SECRET_NAME = re.compile(
    r"^(SLACK_\w*(TOKEN|SECRET)|SERVER_SECRET_KEY|\w*API_KEY|\w*PASSWORD)$", re.IGNORECASE
)
SECRET_VALUE = re.compile(r"\b(xox[abpre]-|xapp-)[\w-]+")
SLIM_PYTHON_311 = re.compile(r"^python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")


def parse(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comment lines dropped, as Docker does."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    if pending.strip():
        keyword, _, args = pending.strip().partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def _of(instructions: list[Instruction], keyword: str) -> list[tuple[int, str]]:
    return [(i, args) for i, (kw, args) in enumerate(instructions) if kw == keyword]


def _words(args: str) -> list[str]:
    """Arguments of a JSON-form or shell-form instruction."""
    if args.startswith("["):
        return json.loads(args)
    return shlex.split(args)


def _without_flags(words: list[str]) -> list[str]:
    return [w for w in words if not w.startswith("--")]


def env_settings(instructions: list[Instruction]) -> dict[str, str]:
    """Names and values set by ENV, in both the `k=v k2=v2` and the legacy `k v` form."""
    found: dict[str, str] = {}
    for _, args in _of(instructions, "ENV"):
        words = shlex.split(args)
        if words and "=" in words[0]:
            for word in words:
                key, _, value = word.partition("=")
                found[key] = value
        elif words:
            found[words[0]] = " ".join(words[1:])
    return found


def base_image_problems(instructions: list[Instruction]) -> list[str]:
    froms = _of(instructions, "FROM")
    if not froms:
        return ["no FROM"]
    problems = []
    for _, args in froms:
        image = _without_flags(args.split())[0]
        if not SLIM_PYTHON_311.match(image):
            problems.append(f"base image {image!r} is not python:3.11-slim")
    return problems


def install_problems(instructions: list[Instruction]) -> list[str]:
    runs = [(i, args) for i, args in _of(instructions, "RUN") if "pip install" in args]
    problems = []
    lock_installs = [
        i for i, args in runs if re.search(r"(-r|--requirement)\s+\S*requirements\.lock\b", args)
    ]
    if len(lock_installs) != 1:
        problems.append(f"expected one `pip install -r requirements.lock`, got {lock_installs}")
    for i, args in runs:
        if "--no-cache-dir" not in args:
            problems.append(f"pip install without --no-cache-dir: {args!r}")
        if "requirements-dev.lock" in args or "[dev]" in args:
            problems.append(f"dev dependencies installed: {args!r}")
        other_reqs = re.findall(r"(?:-r|--requirement)\s+(\S+)", args)
        if any(not r.endswith("requirements.lock") for r in other_reqs):
            problems.append(f"installs from another requirements file: {args!r}")
        if i not in lock_installs and "--no-deps" not in args:
            problems.append(f"project install may pull unpinned dependencies: {args!r}")
    project = [i for i, args in runs if "--no-deps" in args]
    if not project:
        problems.append("the project is not installed with `pip install --no-deps`")
    copies = _of(instructions, "COPY")
    lock_copy = [i for i, args in copies if "requirements.lock" in args]
    source_copy = [i for i, args in copies if re.search(r"\b(bot|runner|store)/?\b", args)]
    if not lock_copy or not source_copy:
        problems.append("requirements.lock and the sources must both be copied")
    elif lock_installs and not (lock_copy[0] < lock_installs[0] < min(source_copy)):
        problems.append("layer caching: copy and install requirements.lock before the sources")
    return problems


def user_problems(instructions: list[Instruction]) -> list[str]:
    users = _of(instructions, "USER")
    if not users:
        return ["no USER: the container would run as root"]
    index, args = users[-1]
    user = args.split(":")[0]
    problems = []
    if user in {"root", "0"}:
        problems.append(f"runs as {user}")
    if user != "10001" and not any(
        "--uid 10001" in a and user in a for _, a in _of(instructions, "RUN")
    ):
        problems.append(f"USER {args!r} is not uid 10001")
    later = [kw for kw, _ in instructions[index + 1 :] if kw in {"RUN", "COPY", "ADD"}]
    if later:
        problems.append(f"{later} after USER run as that user by accident or need root")
    return problems


def cmd_problems(instructions: list[Instruction]) -> list[str]:
    cmds = _of(instructions, "CMD")
    problems = []
    if _of(instructions, "ENTRYPOINT"):
        problems.append("ENTRYPOINT would wrap the CMD")
    if not cmds:
        return [*problems, "no CMD"]
    args = cmds[-1][1]
    if not args.startswith("["):
        problems.append("CMD should use the exec (JSON) form so signals reach python")
    elif json.loads(args) != ["python", "-m", "bot"]:
        problems.append(f"CMD is {args}, not python -m bot")
    return problems


def volume_problems(instructions: list[Instruction]) -> list[str]:
    volumes = _of(instructions, "VOLUME")
    data = [i for i, args in volumes if "/data" in _words(args)]
    problems = []
    if not data:
        problems.append("no VOLUME /data")
    url = env_settings(instructions).get("DATABASE_URL", "")
    if not url.startswith("sqlite+aiosqlite:////data/"):
        problems.append(f"DATABASE_URL {url!r} is not on the /data volume")
    chown = [i for i, args in _of(instructions, "RUN") if "chown" in args and "/data" in args]
    if not chown or (data and chown[0] > data[0]):
        problems.append("/data must be chowned to the app user before VOLUME declares it")
    return problems


def secret_problems(instructions: list[Instruction]) -> list[str]:
    problems = [
        f"secret baked into the image: ENV {name}"
        for name in env_settings(instructions)
        if SECRET_NAME.match(name)
    ]
    for _, args in _of(instructions, "ARG"):
        name = args.split("=")[0].strip()
        if SECRET_NAME.match(name):
            problems.append(f"secret passed as build ARG {name}")
    for kw, args in instructions:
        if SECRET_VALUE.search(args):
            problems.append(f"token-like value in {kw}")
    return problems


def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Rough .dockerignore semantics: the last matching pattern wins, `!` re-includes."""
    path = path.strip("/")
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.strip("/")
        candidates = {body, body.removeprefix("**/")}
        if any(fnmatch.fnmatch(path, c) for c in candidates):
            ignored = not negate
    return ignored


def copy_sources(instructions: list[Instruction]) -> list[str]:
    sources: list[str] = []
    for _, args in _of(instructions, "COPY"):
        if "--from" in args:
            continue
        words = _without_flags(_words(args))
        sources.extend(words[:-1])
    return sources


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


CHECKS = {
    "base image": base_image_problems,
    "install": install_problems,
    "user": user_problems,
    "cmd": cmd_problems,
    "volume": volume_problems,
    "secrets": secret_problems,
}


@pytest.mark.parametrize("name", CHECKS)
def test_dockerfile_passes(dockerfile: list[Instruction], name: str) -> None:
    assert CHECKS[name](dockerfile) == []


def test_copied_paths_exist_and_are_not_ignored(dockerfile: list[Instruction]) -> None:
    sources = copy_sources(dockerfile)
    needed = {"requirements.lock", "pyproject.toml", "README.md", "bot", "runner", "store"}
    assert needed <= {s.strip("/") for s in sources}
    patterns = ignore_patterns()
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
        assert not is_ignored(source, patterns), f"COPY {source} is excluded by .dockerignore"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = ignore_patterns()
    for path in (".env", ".venv", ".git", "data", "bot/__pycache__", "tests"):
        assert is_ignored(path, patterns), f"{path} should be in .dockerignore"
    assert not is_ignored("requirements-dev.lock", ["*.lock", "!requirements-dev.lock"])


def test_parse_joins_continuations_and_drops_comments() -> None:
    text = "FROM python:3.11-slim\n# note\nRUN a \\\n    # inner comment\n    && b\n"
    assert parse(text) == [("FROM", "python:3.11-slim"), ("RUN", "a && b")]


BASE = "FROM python:3.11-slim\n"
GOOD_TAIL = (
    "COPY requirements.lock ./\n"
    "RUN pip install --no-cache-dir -r requirements.lock\n"
    "COPY bot/ ./bot/\n"
    "RUN pip install --no-cache-dir --no-deps .\n"
)

BAD_DOCKERFILES = {
    "full python image": (base_image_problems, "FROM python:3.11\n"),
    "alpine": (base_image_problems, "FROM python:3.11-alpine\n"),
    "other python": (base_image_problems, "FROM python:3.12-slim\n"),
    "dev lock": (
        install_problems,
        BASE + GOOD_TAIL.replace("-r requirements.lock", "-r requirements-dev.lock"),
    ),
    "no lock": (install_problems, BASE + "COPY bot/ ./bot/\nRUN pip install --no-cache-dir .\n"),
    "deps resolved again": (install_problems, BASE + GOOD_TAIL.replace(" --no-deps", "")),
    "pip cache kept": (install_problems, BASE + GOOD_TAIL.replace("--no-cache-dir ", "", 1)),
    "sources before lock": (
        install_problems,
        BASE
        + "COPY bot/ ./bot/\nCOPY requirements.lock ./\n"
        + "RUN pip install --no-cache-dir -r requirements.lock\n"
        + "RUN pip install --no-cache-dir --no-deps .\n",
    ),
    "no user": (user_problems, BASE + 'CMD ["python", "-m", "bot"]\n'),
    "root user": (user_problems, BASE + "USER root\n"),
    "uid 0": (user_problems, BASE + "USER 0:0\n"),
    "run after user": (user_problems, BASE + "USER 10001\nRUN touch /x\n"),
    "shell cmd": (cmd_problems, BASE + "CMD python -m bot\n"),
    "other cmd": (cmd_problems, BASE + 'CMD ["python", "-m", "store", "migrate"]\n'),
    "entrypoint": (
        cmd_problems,
        BASE + 'ENTRYPOINT ["sh", "-c"]\nCMD ["python", "-m", "bot"]\n',
    ),
    "no volume": (
        volume_problems,
        BASE + "RUN chown 10001 /data\nENV DATABASE_URL=sqlite+aiosqlite:////data/a.db\n",
    ),
    "database off the volume": (
        volume_problems,
        BASE + "RUN chown 10001 /data\nVOLUME /data\nENV DATABASE_URL=sqlite+aiosqlite:///a.db\n",
    ),
    "chown after volume": (
        volume_problems,
        BASE + "VOLUME /data\nRUN chown 10001 /data\n"
        "ENV DATABASE_URL=sqlite+aiosqlite:////data/a.db\n",
    ),
    "bot token in env": (secret_problems, BASE + "ENV SLACK_BOT_TOKEN=xoxb-123-abc\n"),
    "app token legacy env": (secret_problems, BASE + "ENV SLACK_APP_TOKEN xapp-1-abc\n"),
    "server key among others": (
        secret_problems,
        BASE + "ENV PYTHONUNBUFFERED=1 SERVER_SECRET_KEY=abc=\n",
    ),
    "signing secret arg": (secret_problems, BASE + "ARG SLACK_SIGNING_SECRET\n"),
    "llm key": (secret_problems, BASE + "ENV OPENROUTER_API_KEY=sk-or-1\n"),
    "token in a run": (secret_problems, BASE + "RUN echo xoxb-123-abc > /t\n"),
}


@pytest.mark.parametrize("case", BAD_DOCKERFILES, ids=list(BAD_DOCKERFILES))
def test_checks_catch_bad_dockerfiles(case: str) -> None:
    check, text = BAD_DOCKERFILES[case]
    assert check(parse(text)), f"{check.__name__} missed: {case}"
