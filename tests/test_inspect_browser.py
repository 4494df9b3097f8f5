"""The HTML report in a real browser: headless Chromium driven over the DevTools protocol.

No extra Python package: Chromium's ``--remote-debugging-pipe`` speaks the DevTools protocol
(JSON messages ending in NUL) on file descriptors 3 and 4, which a ``sh`` wrapper connects to the
subprocess' stdin and stdout. The page is opened from a ``file://`` URL with networking switched
off, so it must carry everything it shows.

Checks: every image has loaded (``complete`` and ``naturalWidth > 0``), and moving the mouse over
a character (a real ``Input.dispatchMouseEvent``, not a synthetic DOM event) shows the chosen
unit's gates at that step, equal to ``trace``'s values.

Chromium comes from ``.ci/install-browser.sh`` in CI, where this test must run: with ``CI`` or
``LSTMKIT_REQUIRE_BROWSER`` set a missing browser is a failure; elsewhere the test is skipped.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time

import numpy as np
import pytest

import lstmkit
from lstmkit import GRU, LSTM, Dense, Embedding
from lstmkit.inspect import trace
from lstmkit.inspect.inputs import load_input
from lstmkit.inspect.report import write_report
from lstmkit.models import Sequential

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--mute-audio",
    "--window-size=1200,900",
)


def _browser():
    path = os.environ.get("LSTMKIT_CHROMIUM") or next(
        (p for p in map(shutil.which, BROWSERS) if p), None
    )
    if path is None:
        if os.environ.get("CI") or os.environ.get("LSTMKIT_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (CI): run .ci/install-browser.sh")
        pytest.skip("Chromium not installed (apt-get install chromium, or .ci/install-browser.sh)")
    return path


class DevTools:
    """A minimal DevTools-protocol client over Chromium's ``--remote-debugging-pipe``."""

    def __init__(self, exe, profile, timeout=30.0):
        script = 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null'
        cmd = [
            "sh",
            "-c",
            script,
            exe,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.timeout = timeout
        self.buf = b""
        self.next_id = 0
        self.events = []

    def _message(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium exited (code {self.proc.poll()})")
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, session=None, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.proc.stdin.write(json.dumps(msg).encode() + b"\0")
        self.proc.stdin.flush()
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def evaluate(self, session, expression):
        r = self.call(
            "Runtime.evaluate",
            session,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            self.proc.kill()  # it is going away anyway
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _text_model():
    lstmkit.set_random_seed(3)
    chars = list("\nabcdefghijklmnopqrstuvwxyz .,'")
    model = Sequential(
        [
            Embedding(len(chars), 6, input_shape=(None,)),
            LSTM(8, return_sequences=True, name="lstm"),
            GRU(4, return_sequences=True, name="gru"),
            Dense(len(chars), name="logits"),
        ]
    )
    model.build((None, None))
    rng = np.random.default_rng(0)
    for p in model.params.values():  # livelier than the initialisation: visible colours
        p[...] = rng.normal(0.0, 0.8, p.shape)
    model.metadata = {"app": "text", "vocab": chars}
    return model


def test_report_renders_and_hover_shows_gates(tmp_path):
    exe = _browser()
    model = _text_model()
    src = tmp_path / "input.txt"
    src.write_text("the cat sat on the mat.\nit's <b>not</b> html & fine", encoding="utf-8")
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        load_input(model, src)
    src.write_text("the cat sat on the mat.\nits not html, fine", encoding="utf-8")
    x, text = load_input(model, src)
    report = write_report(model, x, tmp_path / "out", text=text, units=[5])
    expected = trace(model, x)["lstm"]

    browser = DevTools(exe, tmp_path / "profile")
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        browser.call("Page.navigate", session, url=report.resolve().as_uri())
        deadline = time.monotonic() + 20
        while browser.evaluate(session, "document.readyState") != "complete":
            assert time.monotonic() < deadline, "the report did not finish loading"
            time.sleep(0.05)

        images = browser.evaluate(
            session,
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.src.slice(0, 22)])",
        )
        # 2 per layer (gates, states), the gradient flow and the coloured text
        assert len(images) == 2 * 2 + 2
        for complete, width, src_start in images:
            assert complete and width > 0
            assert src_start == "data:image/png;base64,"

        t = text.index("m")  # "mat"
        box = browser.evaluate(
            session,
            f"""(() => {{
                const s = document.querySelector('#text-view .ch[data-t="{t}"]');
                s.scrollIntoView({{block: 'center'}});
                const r = s.getBoundingClientRect();
                return [r.left + r.width / 2, r.top + r.height / 2];
            }})()""",
        )
        before = browser.evaluate(session, "document.getElementById('gate-panel').textContent")
        assert before == "hover a token"
        browser.call("Input.dispatchMouseEvent", session, type="mouseMoved", x=box[0], y=box[1])
        panel = browser.evaluate(session, "document.getElementById('gate-panel').textContent")
        assert f"step {t} \u2018m\u2019" in panel and "lstm unit 5" in panel
        shown = dict(re.findall(r"\b([figoch]) = (-?\d+\.\d+)", panel))
        assert sorted(shown) == sorted("figoch")
        for name, value in shown.items():
            assert float(value) == pytest.approx(float(expected[name][0, t, 5]), abs=6e-4)
        # the colour follows the chosen unit: changing it repaints the characters
        colours = browser.evaluate(
            session,
            """(() => {
                const sp = document.querySelectorAll('#text-view .ch');
                const before = Array.from(sp).map(s => s.style.background).join('|');
                const sel = document.getElementById('text-unit');
                sel.value = '0'; sel.dispatchEvent(new Event('change'));
                const after = Array.from(sp).map(s => s.style.background).join('|');
                return [before.length > 0, before !== after];
            })()""",
        )
        assert colours == [True, True]
    finally:
        browser.close()
