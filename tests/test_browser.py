"""End to end in a real browser: `maskworld play` in a subprocess, the page in headless Chromium.

Needs Debian's chromium (`make chromium` or `apt-get install chromium`) and the `playwright` Python
package; never `playwright install` (no downloads at test time). Skipped, with the reason, otherwise.
The screenshot goes to $MASKWORLD_TEST_ARTIFACTS (default: test-artifacts/).
"""

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
                 if p and os.path.exists(p)), None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("MASKWORLD_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium, or `make chromium`)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def play_world(tiny_world, tmp_path):
    """The tiny world with larger random weights, so that actions visibly change the next frame."""
    import torch

    torch.manual_seed(0)
    with torch.no_grad():
        for p in tiny_world.dynamics.parameters():
            if p.dim() == 2:
                p.normal_(0, 2.0 / p.shape[-1] ** 0.5)
    return tiny_world.save(tmp_path / "play_world")


@pytest.fixture
def server(play_world, tmp_path):
    yield from _serve([str(play_world), "--fps", "15"], tmp_path)


def _extra_shipped_worlds() -> list[str]:
    from maskworld import worlds

    return [n for n in worlds.shipped() if n != worlds.DEFAULT]


@pytest.mark.slow
@pytest.mark.parametrize("name", _extra_shipped_worlds())
def test_every_other_shipped_world_plays_in_chromium(name, tmp_path):
    """`maskworld play NAME` for each shipped world beside the default: every bound key steps the world in step mode,
    the actions do not all draw the same frame, and real-time mode runs (its FPS readout saved, not asserted)."""
    import json

    from maskworld import worlds

    shared = worlds.agents(worlds.resolve(name)) > 1  # several avatars: played shared, the keys move one avatar
    args = [name, "--fps", "30"] + (["--persistent", "t", "--persistent-db", str(tmp_path / "t.db")] if shared else [])
    for url in _serve(args, tmp_path, env_extra={}):
        with chromium_page() as (page, errors):
            page.goto(url + "?seed=0")
            page.wait_for_function("() => window.mw && window.mw.header && window.mw.info", timeout=60000)
            if shared:
                _drive_an_avatar(page)
                assert not errors and not page.evaluate("window.mw.errors")
                continue
            bindings = page.evaluate("window.mw.info.bindings")
            keys = [b["keys"][0] for b in bindings if len(b["keys"]) == 1]
            assert len(keys) >= 2, bindings
            page.click("#mode-step")
            page.wait_for_function("() => window.mw.mode === 'step'")
            frames = set()
            for k in keys:
                page.click("#reset")
                wait_step(page, 0)
                for i in range(1, 4):  # three steps of one key from the same start
                    page.keyboard.press({" ": "Space"}.get(k, k))
                    wait_step(page, i)
                frames.add(canvas_pixels(page))
            assert len(frames) >= 2, "every action drew the same frame"
            page.click("#mode-realtime")
            idle = page.evaluate("window.mw.info.idle_action")
            if idle is None:  # no NOOP (MiniGrid's actions): real time waits for a key, so hold one
                page.keyboard.down({" ": "Space"}.get(keys[0], keys[0]))
            start = page.evaluate("window.mw.frames")
            page.wait_for_function(f"() => window.mw.frames >= {start + 20}", timeout=60000)
            time.sleep(3)
            fps = float(page.inner_text("#fps"))
            if idle is None:
                page.keyboard.up({" ": "Space"}.get(keys[0], keys[0]))
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"shipped_{name}.png"))
            (ARTIFACTS / f"shipped_{name}_fps.json").write_text(json.dumps({"page_fps": fps, "target_fps": 30}))
            print(f"shipped world {name}: page FPS readout {fps} (server ticking at 30)")
            assert fps > 0 and not errors and not page.evaluate("window.mw.errors")


def _drive_an_avatar(page) -> None:
    """A shipped world of several agents: take an avatar, hold each arrow in turn, the world answers at its rate."""
    page.click("#driver-you")
    page.wait_for_function("() => window.mw.driver === 'you'", timeout=60000)  # a loaded machine hands over late
    for key, action in (("ArrowRight", "RIGHT"), ("ArrowDown", "DOWN")):
        code = page.evaluate("window.mw.info.actions").index(action)
        page.keyboard.down(key)
        page.wait_for_function(f"() => window.mw.header.action === {code} && window.mw.header.avatars.includes('you')",
                               timeout=30000)
        page.keyboard.up(key)


@pytest.fixture
def shipped_server(tmp_path):
    """`maskworld play` with no world argument: the world shipped in the package."""
    yield from _serve(["--fps", "30"], tmp_path, env_extra={})


def _serve(args, tmp_path, env_extra=None):
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1") if env_extra is None else dict(os.environ, PYTHONUNBUFFERED="1")
    log = open(tmp_path / "server.log", "w+")  # noqa: SIM115  (the server writes it until the finally below)
    proc = subprocess.Popen([sys.executable, "-m", "maskworld", "play", *args, "--port", str(port),
                             "--db", str(tmp_path / "s.db")], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read()}")
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("server did not start in 60 s")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def canvas_pixels(page) -> str:
    data = page.evaluate("""() => { const c = document.getElementById('screen');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""")
    assert len(data) == 64 * 64 * 4
    return hashlib.sha1(bytes(data)).hexdigest()


def wait_step(page, step: int):
    page.wait_for_function(f"() => window.mw.header && window.mw.header.step === {step}", timeout=20000)


def step_with(page, key: str) -> str:
    page.click("#reset")
    wait_step(page, 0)
    page.keyboard.press(key)
    wait_step(page, 1)
    return canvas_pixels(page)


@contextlib.contextmanager
def chromium_page():
    """-> (page, errors): a page in headless Debian Chromium, with the page's uncaught errors collected."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no `playwright install` needed)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, errors
        finally:
            browser.close()


@pytest.mark.slow
def test_play_in_chromium(server):
    with chromium_page() as (page, errors):
        page.goto(server + "?seed=0")
        # real-time mode: the world ticks with the idle action (NOOP) and the readouts move
        page.wait_for_function("() => window.mw.frames >= 4", timeout=30000)
        before = canvas_pixels(page)
        page.wait_for_function("() => window.mw.fps > 0", timeout=20000)
        fps = float(page.inner_text("#fps"))
        assert fps > 0
        assert int(page.inner_text("#step")) > 0
        assert page.inner_text("#memory") == "off"  # a world trained without memory M
        assert page.inner_text("#driver") == "you" and page.is_disabled("#driver-agent")  # no agent in this world
        assert page.inner_text("#bindings").count("\n") >= 2 and "LEFT" in page.inner_text("#bindings")
        page.keyboard.down("ArrowLeft")  # hold LEFT for a few ticks
        page.wait_for_function("() => window.mw.header.action === 0", timeout=20000)
        page.keyboard.up("ArrowLeft")
        assert canvas_pixels(page) != before

        # step mode: one frame per key; from the same start, LEFT and RIGHT give different frames
        page.click("#mode-step")
        page.wait_for_function("() => window.mw.mode === 'step'")
        page.click("#reset")
        wait_step(page, 0)
        start = canvas_pixels(page)
        left, right, left2 = step_with(page, "ArrowLeft"), step_with(page, "ArrowRight"), step_with(page, "ArrowLeft")
        assert left != start and left != right
        assert left == left2  # reset + same key -> same frame (seeded, exact)

        # save from the page, and the list shows it
        page.fill("#save-name", "browser run")
        page.click("#save")
        page.wait_for_selector("#sessions li:has-text('browser run')", timeout=20000)

        page.click("#mode-realtime")
        page.wait_for_function("() => window.mw.fps > 0", timeout=20000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "play.png"))
        assert not errors and not page.evaluate("window.mw.errors")
        print(f"page FPS readout: {fps}")


@pytest.mark.slow
def test_shipped_world_fps_in_chromium(shipped_server):
    """The shipped world, played as a person would: hold FORWARD, read the page's own FPS readout.

    The number is a measurement (printed and saved to test-artifacts/shipped_world_fps.json), not a
    timed assertion: the bar (>= 20 FPS on a 2-core CPU) is reported, machines are shared and noisy.
    """
    import json

    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no `playwright install` needed)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(shipped_server + "?seed=0")
            page.wait_for_function("() => window.mw && window.mw.header", timeout=60000)
            assert "FORWARD" in page.inner_text("#bindings")
            start = canvas_pixels(page)
            page.keyboard.down("ArrowUp")  # MiniGrid FORWARD, held: real-time mode ticks at --fps
            page.wait_for_function("() => window.mw.frames >= 20", timeout=60000)
            time.sleep(5)
            fps = float(page.inner_text("#fps"))
            model_ms = page.inner_text("#model-ms") if page.query_selector("#model-ms") else None
            page.keyboard.up("ArrowUp")
            assert canvas_pixels(page) != start
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "shipped_world.png"))
            (ARTIFACTS / "shipped_world_fps.json").write_text(json.dumps({"page_fps": fps, "model_ms": model_ms, "target_fps": 30}))
            print(f"shipped world: page FPS readout {fps} (server ticking at 30), model ms {model_ms}")
            assert fps > 0
        finally:
            browser.close()


@pytest.fixture
def latent_server(tiny_latent_world, tmp_path):
    import torch

    torch.manual_seed(0)
    with torch.no_grad():  # larger random weights: each code visibly changes the next frame
        for p in tiny_latent_world.dynamics.parameters():
            if p.dim() == 2:
                p.normal_(0, 2.0 / p.shape[-1] ** 0.5)
    tiny_latent_world.save(tmp_path / "latent_world")
    yield from _serve([str(tmp_path / "latent_world"), "--fps", "15"], tmp_path)


@pytest.mark.slow
def test_latent_world_in_chromium(latent_server):
    """A world trained on video: digits 1..K press latent codes, the game's keys their mapped codes, and the
    preview strip shows K pictures, the 2nd of which is the frame that key 2 then gives."""
    with chromium_page() as (page, errors):
        page.goto(latent_server + "?seed=0&mode=step")
        page.wait_for_function("() => window.mw.header && window.mw.previews >= 1", timeout=30000)
        assert page.is_visible("#preview-box") and page.locator("#preview img").count() == 4
        keys_text = page.inner_text("#bindings")
        assert "latent 1" in keys_text and "LEFT" in keys_text
        preview2 = page.evaluate("() => document.querySelectorAll('#preview img')[1].src")
        page.keyboard.press("2")
        wait_step(page, 1)
        assert page.evaluate("() => window.mw.header.action") == 1
        # the canvas now shows what the strip promised for code 2
        shown = page.evaluate("""async (src) => { const img = new Image(); img.src = src; await img.decode();
            const c = document.createElement('canvas'); c.width = c.height = 64; const x = c.getContext('2d');
            x.drawImage(img, 0, 0); return Array.from(x.getImageData(0, 0, 64, 64).data); }""", preview2)
        assert hashlib.sha1(bytes(shown)).hexdigest() == canvas_pixels(page)
        page.click("#reset")
        wait_step(page, 0)
        page.keyboard.press("ArrowLeft")  # LEFT maps to code 4 (index 3) in the fixture's map
        wait_step(page, 1)
        assert page.evaluate("() => window.mw.header.action") == 3
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "play_latent.png"))
        assert not errors and not page.evaluate("window.mw.errors")


@pytest.fixture
def memory_server(tiny_memory_world, tmp_path):
    yield from _serve([str(tiny_memory_world.path), "--fps", "15"], tmp_path)


@pytest.mark.slow
def test_memory_world_shows_what_memory_holds(memory_server):
    """Memory is on by default in a world trained with it, and the page counts the frames it holds."""
    with chromium_page() as (page, errors):
        page.goto(memory_server + "?seed=0&mode=step")
        page.wait_for_function("() => window.mw.header && window.mw.header.step === 0", timeout=30000)
        start = int(page.inner_text("#memory"))
        for i, key in enumerate(["ArrowUp", "ArrowLeft", "ArrowUp"], 1):
            page.keyboard.press(key)
            wait_step(page, i)
        assert int(page.inner_text("#memory")) == start + 3
        assert not errors and not page.evaluate("window.mw.errors")


@pytest.fixture
def agent_server(play_world, tmp_path):
    from test_serve import save_fixed_agent

    save_fixed_agent(play_world / "agent", 3, action=1)  # WORLD/agent: play offers it without --agent
    yield from _serve([str(play_world), "--fps", "15"], tmp_path)


@pytest.mark.slow
def test_agent_drives_in_chromium(agent_server):
    """G hands the world to the agent: the page says who acts, and the frames carry the agent's action."""
    with chromium_page() as (page, errors):
        page.goto(agent_server + "?seed=0")
        page.wait_for_function("() => window.mw.frames >= 2", timeout=30000)
        assert page.inner_text("#driver") == "you" and not page.is_disabled("#driver-agent")
        page.keyboard.press("g")
        page.wait_for_function("() => window.mw.header && window.mw.header.driver === 'agent'", timeout=20000)
        assert page.inner_text("#driver") == "agent"
        page.wait_for_function("() => window.mw.header.action === 1", timeout=20000)
        page.click("#driver-you")
        page.wait_for_function("() => window.mw.header.driver === 'you'", timeout=20000)
        assert page.inner_text("#driver") == "you"
        assert not errors and not page.evaluate("window.mw.errors")


@pytest.mark.slow
def test_two_pages_share_a_persistent_world(play_world, tmp_path):
    """`maskworld play --persistent`: two Chromium pages show the same frame for every tick they both saw (a checksum
    per tick), one takes the avatar and drives, the other sees who drives."""
    args = [str(play_world), "--fps", "15", "--persistent", "town", "--persistent-db", str(tmp_path / "town.db")]
    for url in _serve(args, tmp_path):
        with chromium_page() as (a, errors):
            b = a.context.browser.new_page()
            b.on("pageerror", lambda e: errors.append(str(e)))
            for page in (a, b):
                page.goto(url)
            for page in (a, b):
                page.wait_for_function("() => window.mw.info && Object.keys(window.mw.sums).length >= 12", timeout=60000)
            sa, sb = a.evaluate("window.mw.sums"), b.evaluate("window.mw.sums")
            common = set(sa) & set(sb)
            assert len(common) >= 6 and all(sa[k] == sb[k] for k in common)
            a.click("#driver-you")
            a.wait_for_function("() => window.mw.driver === 'you'")
            a.keyboard.down("ArrowRight")
            a.wait_for_function("() => window.mw.header.driver === 'you'", timeout=20000)
            b.wait_for_function("() => window.mw.header.driver.startsWith('viewer-')", timeout=20000)
            a.keyboard.up("ArrowRight")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            b.screenshot(path=str(ARTIFACTS / "play_shared.png"))
            assert not errors and not a.evaluate("window.mw.errors") and not b.evaluate("window.mw.errors")


def test_two_pages_drive_two_avatars_of_a_multi_agent_world(tmp_path):
    """A world of two agents played shared in Chromium: each page takes its own avatar, both see who drives which,
    and both show the same frame for every tick they both saw."""
    import torch

    from maskworld.models.dynamics import Dynamics, DynamicsConfig
    from maskworld.models.sampler import SamplerConfig
    from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
    from maskworld.world.world import World, WorldMeta

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(channels=16, num_res=1))
    dyn = Dynamics(DynamicsConfig(vocab_size=tok.cfg.vocab_size, grid=tok.cfg.grid, num_actions=25, action_factors=[5, 5],
                                  d_model=32, n_layers=2, n_heads=2, window=4))
    meanings = ["NOOP", "UP", "DOWN", "LEFT", "RIGHT"]
    world = World(tok, dyn, SamplerConfig(steps=2), WorldMeta(env_id="MultiAgent-Coins-v0", agents=2,
                                                                agent_action_meanings=meanings,
                                                                action_meanings=[f"{a}|{b}" for b in meanings for a in meanings]))
    path = world.save(tmp_path / "coins_world")
    args = [str(path), "--fps", "10", "--persistent", "yard", "--persistent-db", str(tmp_path / "yard.db")]
    for url in _serve(args, tmp_path):
        with chromium_page() as (a, errors):
            b = a.context.browser.new_page()
            b.on("pageerror", lambda e: errors.append(str(e)))
            for page in (a, b):
                page.goto(url)
                page.wait_for_function("() => window.mw.info && window.mw.frames > 2", timeout=60000)
            for page, key in ((a, "ArrowRight"), (b, "ArrowDown")):
                page.click("#driver-you")
                page.wait_for_function("() => window.mw.driver === 'you'")
                page.keyboard.down(key)
            a.wait_for_function("() => { const h = window.mw.header; return h.avatars[0] === 'you' && "
                                "h.avatars[1].startsWith('viewer-') && h.action === 4; }", timeout=20000)
            b.wait_for_function("() => { const h = window.mw.header; return h.avatars[1] === 'you' && h.action === 2; }",
                                timeout=20000)
            assert "you" in b.inner_text("#avatars")
            sa, sb = a.evaluate("window.mw.sums"), b.evaluate("window.mw.sums")
            common = set(sa) & set(sb)
            assert len(common) >= 4 and all(sa[k] == sb[k] for k in common)
            assert not errors and not a.evaluate("window.mw.errors") and not b.evaluate("window.mw.errors")


def test_type_an_instruction_then_let_the_world_drive(tmp_path):
    """A unified world in Chromium: an instruction typed into the page starts a world from words, and the world's
    own policy (by mask) takes over."""
    from test_unified import _random_unified_world

    path = _random_unified_world(tmp_path / "u")
    for url in _serve([str(path), "--fps", "8"], tmp_path):
        with chromium_page() as (page, errors):
            page.goto(url)
            page.wait_for_function("() => window.mw.info && window.mw.frames > 0", timeout=60000)
            assert page.is_visible("#words")
            before = canvas_pixels(page)
            page.fill("#words", "go to the red ball")
            page.press("#words", "Enter")
            page.wait_for_function("() => window.mw.header && window.mw.header.step === 0", timeout=20000)
            page.wait_for_timeout(300)
            assert canvas_pixels(page) != before  # the frame the words made
            page.click("#driver-agent")
            page.wait_for_function("() => window.mw.header.driver === 'agent' && window.mw.header.step >= 3",
                                   timeout=30000)
            assert not errors and not page.evaluate("window.mw.errors")
