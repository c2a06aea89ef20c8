#!/usr/bin/env python3
"""Drive the `enhance serve` web page in headless Chromium and check that it works end to end.

Usage:
    scripts/serve-browser-check.py --url http://127.0.0.1:8080/ --image photo.png \\
        [--op upscale|restore|chain] [--model NAME] [--gpen NAME] [--timeout 180] \\
        [--screenshot /tmp/serve-page.png] [--skip-error-case]

What it does:
  1. opens --url, waits until the model list from GET /v1/models has filled the selects;
  2. picks --op (and --model / --gpen when given), uploads --image through the `#file` input and clicks
     `#submit`;
  3. waits (up to --timeout seconds) until `#result-img` has a decoded image (naturalWidth > 0), checks that
     the `#timings` table has at least one row, `#peak` is non-empty and `#download` points at the result,
     moves the before/after `#slider`, and saves a screenshot (1280x1000) to --screenshot;
  4. unless --skip-error-case: uploads a text file named *.png and checks that `#error` becomes visible with a
     plain-text (non-HTML) message, saving `<screenshot-stem>-error.png` next to the first screenshot.
Exits 0 when every check passed, 1 with a "FAIL: ..." line otherwise (2 for bad arguments / missing tools).

Prerequisites (Debian/Ubuntu):
    apt-get install -y chromium chromium-driver     # /usr/bin/chromium, /usr/bin/chromedriver
    pip install selenium
"""
import argparse
import os
import re
import sys
import tempfile
import time

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    sys.exit("serve-browser-check: the Python package 'selenium' is missing (pip install selenium)")


class CheckFailed(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def ok(msg):
    log("  ok   " + msg)


def make_driver(args):
    for path in (args.chromium, args.chromedriver):
        if not os.path.exists(path):
            sys.stderr.write(f"serve-browser-check: {path} not found "
                             "(apt-get install -y chromium chromium-driver)\n")
            sys.exit(2)
    opts = webdriver.ChromeOptions()
    opts.binary_location = args.chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,1000", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(args.chromedriver), options=opts)
    driver.set_window_size(1280, 1000)
    return driver


def wait(driver, timeout, cond, what):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: cond(d))
    except TimeoutException:
        raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def visible_error(driver):
    el = driver.find_element(By.ID, "error")
    return el.text.strip() if el.is_displayed() else ""


def select_value(driver, sel_id, value):
    sel = Select(driver.find_element(By.ID, sel_id))
    values = [o.get_attribute("value") for o in sel.options]
    if value not in values:
        raise CheckFailed(f"#{sel_id} has no option {value!r}; options are {values}")
    sel.select_by_value(value)


def upload_and_submit(driver, path):
    driver.find_element(By.ID, "file").send_keys(os.path.abspath(path))
    btn = driver.find_element(By.ID, "submit")
    wait(driver, 10, lambda d: btn.is_enabled(), "#submit to become enabled after choosing a file")
    btn.click()


def success_case(driver, args):
    log(f"opening {args.url}")
    driver.get(args.url)
    want = "gpen" if args.op == "restore" else "model"

    def models_ready(d):
        if visible_error(d):
            raise CheckFailed("page shows an error while loading models: " + visible_error(d))
        return len(Select(d.find_element(By.ID, want)).options) > 0 and \
            d.find_element(By.ID, want).get_attribute("value") != ""
    wait(driver, 30, models_ready, f"the model list to fill #{want}")
    for sid in ("model", "gpen"):
        opts = [o.get_attribute("textContent").strip() for o in Select(driver.find_element(By.ID, sid)).options]
        ok(f"#{sid} lists {len(opts)} model(s): {', '.join(opts) if opts else '-'}")

    select_value(driver, "op", args.op)
    if args.model:
        select_value(driver, "model", args.model)
    if args.gpen:
        select_value(driver, "gpen", args.gpen)
    for sid, needed in (("model", args.op in ("upscale", "chain")), ("gpen", args.op in ("restore", "chain"))):
        shown = driver.find_element(By.ID, sid).is_displayed()
        if shown != needed:
            raise CheckFailed(f"#{sid} is {'shown' if shown else 'hidden'} for op {args.op}")
    chosen = {s: driver.find_element(By.ID, s).get_attribute("value") for s in ("op", "model", "gpen")}
    ok(f"op={chosen['op']} model={chosen['model']} gpen={chosen['gpen']} (only the relevant selects shown)")

    t0 = time.time()
    upload_and_submit(driver, args.image)
    log(f"submitted {args.image}; waiting up to {args.timeout:.0f} s for the result")
    running = driver.execute_script("return [document.getElementById('submit').disabled,"
                                    "document.getElementById('status').textContent];")
    if running[0]:
        ok(f"#submit disabled while running; status {running[1]!r}")
    else:
        log(f"  note #submit was enabled right after the click (finished already?); status {running[1]!r}")

    def done(d):
        err = visible_error(d)
        if err:
            raise CheckFailed("the page shows an error instead of a result: " + err.replace("\n", " | "))
        return d.execute_script("var i=document.getElementById('result-img');"
                                "return i.complete && i.naturalWidth > 0 && i.offsetWidth > 0;")
    wait(driver, args.timeout, done, "#result-img to show the result")
    w, h = driver.execute_script("var i=document.getElementById('result-img');"
                                 "return [i.naturalWidth, i.naturalHeight];")
    ok(f"#result-img decoded: {w}x{h} px after {time.time() - t0:.1f} s; "
       f"status: {driver.find_element(By.ID, 'status').text!r}")

    rows = driver.find_elements(By.CSS_SELECTOR, "#timings tbody tr")
    if not rows:
        raise CheckFailed("#timings has no rows (Server-Timing header missing or unparsed?)")
    ok("#timings rows: " + ", ".join(r.text.replace("\n", " ").replace(" ", "=", 1) for r in rows))
    peak = driver.find_element(By.ID, "peak").text.strip()
    if not peak:
        raise CheckFailed("#peak is empty")
    ok(f"#peak = {peak}")
    faces = driver.find_element(By.ID, "faces").text.strip()
    if args.op != "upscale":
        ok(f"#faces = {faces}")
    link = driver.find_element(By.ID, "download")
    href, name = link.get_attribute("href") or "", link.get_attribute("download") or ""
    if not href.startswith("blob:") or not re.search(r"\.(png|jpg|webp)$", name):
        raise CheckFailed(f"#download is not a usable link (href={href!r}, download={name!r})")
    ok(f"#download -> {name}")

    # The comparison: both images must occupy the same box; the slider must move the clip.
    boxes = driver.execute_script(
        "function r(id){var b=document.getElementById(id).getBoundingClientRect();"
        "return [Math.round(b.width),Math.round(b.height)];}"
        "return [r('before-img'), r('result-img'), r('compare')];")
    if boxes[0] != boxes[1] or boxes[1][0] <= 0:
        raise CheckFailed(f"before/after images are not laid out in the same box: {boxes}")
    slider = driver.find_element(By.ID, "slider")
    clips = []
    for v in (20, 50):
        driver.execute_script("arguments[0].value=arguments[1];"
                              "arguments[0].dispatchEvent(new Event('input',{bubbles:true}));", slider, v)
        clips.append(driver.execute_script(
            "return getComputedStyle(document.getElementById('result-img')).clipPath;"))
    if clips[0] == clips[1]:
        raise CheckFailed(f"moving #slider does not change the result clip ({clips[0]})")
    ok(f"#compare box {boxes[2][0]}x{boxes[2][1]} px, both images {boxes[0][0]}x{boxes[0][1]}; "
       f"#slider moves the clip ({clips[0]} -> {clips[1]})")

    save(driver, args.screenshot)


def error_case(driver, args):
    fd, bogus = tempfile.mkstemp(prefix="not-an-image-", suffix=".png")
    with os.fdopen(fd, "w") as f:
        f.write("this is plain text, not an image\n" * 4)
    try:
        log(f"submitting a text file named {os.path.basename(bogus)}")
        upload_and_submit(driver, bogus)

        def shown(d):
            return visible_error(d)
        msg = wait(driver, args.timeout, shown, "#error to become visible")
    finally:
        os.unlink(bogus)
    if re.search(r"<\s*/?\s*[a-zA-Z!][^>]*>", msg) or "Traceback" in msg:
        raise CheckFailed(f"#error shows markup or a stack trace: {msg!r}")
    lines = [l for l in msg.splitlines() if l.strip()]
    if len(lines) < 2 or not lines[-1].strip():
        raise CheckFailed(f"#error has no message text: {msg!r}")
    ok("#error visible: " + " | ".join(lines))
    if driver.find_element(By.ID, "result-img").is_displayed():
        raise CheckFailed("the previous result is still shown next to the error")
    ok("previous result cleared")
    base, ext = os.path.splitext(args.screenshot)
    save(driver, f"{base}-error{ext or '.png'}")


def save(driver, path):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    time.sleep(0.3)  # let the last paint land
    if not driver.save_screenshot(path):
        raise CheckFailed(f"could not save screenshot {path}")
    ok(f"screenshot saved: {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8080/")
    p.add_argument("--image", required=True, help="a PNG/JPEG/WebP to enhance")
    p.add_argument("--op", default="upscale", choices=("upscale", "restore", "chain"))
    p.add_argument("--model", help="Real-ESRGAN model name (default: the page's choice)")
    p.add_argument("--gpen", help="GPEN model name (default: the page's choice)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for a result (default 180)")
    p.add_argument("--screenshot", default="serve-page.png")
    p.add_argument("--skip-error-case", action="store_true")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = p.parse_args()
    if not os.path.isfile(args.image):
        sys.stderr.write(f"serve-browser-check: no such image: {args.image}\n")
        return 2

    driver = make_driver(args)
    try:
        success_case(driver, args)
        if not args.skip_error_case:
            error_case(driver, args)
    except (CheckFailed, WebDriverException) as e:
        msg = e.msg if isinstance(e, WebDriverException) and e.msg else str(e)
        log(f"FAIL: {msg.strip()}")
        try:
            base, _ = os.path.splitext(args.screenshot)
            driver.save_screenshot(base + "-failure.png")
            log(f"  (page at the failure: {base}-failure.png)")
            for entry in driver.get_log("browser")[-10:]:
                log(f"  console {entry.get('level')}: {entry.get('message')}")
        except Exception:
            pass
        return 1
    finally:
        driver.quit()
    log("PASS: all browser checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
