"""The project's texts speak of the project: CPUs, commands, versions and dates, never of the numbered work
periods in which a figure was measured. The word for those periods is banned from every tracked text file
(README, docs, bench, source, tests, scripts) except where it is another library's or another meaning's name:
onnxruntime's InferenceSession and its `session` objects, pytest's scope="session" and test session,
requests.Session. This file itself is exempt: it has to spell the word to ban it."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORD = re.compile(r"\bsessions?\b", re.I)
ALLOWED = [re.compile(p, re.I) for p in (
    r"\w+Session\b",                   # InferenceSession, SessionOptions, ClientSession (not matched by WORD anyway)
    r"\brequests\.Session\b",
    r"scope\s*=\s*[\"']session[\"']",  # pytest fixtures
    r"\b(test|pytest) session\b",      # pytest's own phrase for one run of the suite
    r"[\w\]\)]\.session\b",            # an attribute: self.session, backend.session
    r"\bsession\s*(=|\.\w|\[)",        # a variable or argument: session = ..., session.run(, session=None
    r"[(,]\s*session\s*[,)]",          # passed along: f(a, session, b)
    r"\bsession is (not )?None\b",
)]
TEXT_SUFFIXES = {".md", ".py", ".txt", ".toml", ".cfg", ".ini", ".yaml", ".yml", ".sh", ".html", ".css", ".json", ""}


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [ROOT / p for p in out.decode("utf-8").split("\0") if p]
    return [f for f in files if f.suffix in TEXT_SUFFIXES and f.is_file() and f != Path(__file__).resolve()]


def offences(text: str) -> list[str]:
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        rest = line
        for allowed in ALLOWED:
            rest = allowed.sub(" ", rest)
        if WORD.search(rest):
            found.append(f"{n}: {line.strip()[:120]}")
    return found


def test_no_text_names_numbered_work_periods():
    bad = {}
    for f in tracked_text_files():
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        if found := offences(text):
            bad[str(f.relative_to(ROOT))] = found
    assert not bad, ("say which CPU, command, version or date instead:\n" +
                     "\n".join(f"{f}:{line}" for f, lines in bad.items() for line in lines))


def test_the_rule_catches_prose_and_spares_identifiers():
    w = "ses" + "sion"
    assert offences(f"measured in {w} 11 on a CPU with AMX")
    assert offences(f"an earlier {w}'s CPU")
    assert offences(f"Sessions 3-5's recipe")
    assert not offences(f"sess = ort.Inference{w.title()}(path)")
    assert not offences(f'@pytest.fixture(scope="{w}")')
    assert not offences(f"trained once per test {w}")
    assert not offences(f"self.{w} = ort.InferenceSession(str(path), so)")
    assert not offences(f"return FrozenBackbone(backbone, device, amp, {w}, log=log)")
    assert not offences(f"if {w} is None:")
