#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol (--remote-debugging-pipe), in real
time: pages that keep a stream open (EventSource) load and update as in a real browser,
which --dump-dom with a virtual time budget cannot do.

Usage: browser.py CHROMIUM STEPS_JSON
STEPS_JSON is a list of steps, run in order:
  {"viewport": [W, H], "dark": bool}   size the window; emulate prefers-color-scheme
  {"goto": URL}                        navigate and wait for the load event
  {"wait": JS, "timeout": S}           poll until the expression is truthy (fails after S seconds)
  {"eval": JS}                         evaluate; its value (JSON) is printed in the results
  {"fill": SELECTOR, "value": TEXT}    set a form field's value
  {"click": SELECTOR}                  click what navigates (a submit button, a link) and wait
                                       for the next page's load event
  {"screenshot": PATH}                 save a PNG
  {"sleep": S}                         real seconds
  {"signal": PID}                      send SIGTERM to a process (a server the page follows)
Prints {"results": [each eval's value]} on success; on failure, exits 1 with the reason and
the page's text at that moment."""
import base64, json, os, subprocess, sys, time


class Browser:
    def __init__(self, chromium):
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--no-first-run", "--remote-debugging-pipe", "about:blank"]
        # Chromium reads commands on fd 3 and writes answers on fd 4.
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}', chromium] + args,
            pass_fds=(to_browser_r, from_browser_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.out = os.fdopen(to_browser_w, "wb", buffering=0)
        self.inp = os.fdopen(from_browser_r, "rb", buffering=0)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        for domain in ("Page.enable", "Runtime.enable"):
            self.call(domain, session=True)

    def read_message(self):
        while b"\0" not in self.buffer:
            chunk = self.inp.read(65536)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=False):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.out.write(json.dumps(message).encode() + b"\0")
        while True:
            answer = self.read_message()
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_event(self, method, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    del self.events[index]
                    return event
            self.events.append(self.read_message())
        raise RuntimeError(f"no {method} within {timeout} s")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')} {result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run(browser, steps):
    results = []
    for step in steps:
        if "viewport" in step:
            width, height = step["viewport"]
            browser.call("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500}, session=True)
            scheme = "dark" if step.get("dark") else "light"
            browser.call("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}, session=True)
        elif "goto" in step:
            browser.events.clear()
            browser.call("Page.navigate", {"url": step["goto"]}, session=True)
            browser.wait_event("Page.loadEventFired", 30)
        elif "wait" in step:
            deadline = time.time() + step.get("timeout", 30)
            while not browser.evaluate(step["wait"]):
                if time.time() > deadline:
                    raise RuntimeError(f"still false after {step.get('timeout', 30)} s: {step['wait']}")
                time.sleep(0.1)
        elif "eval" in step:
            results.append(browser.evaluate(step["eval"]))
        elif "fill" in step:
            found = browser.evaluate(f"(function() {{ var e = document.querySelector({json.dumps(step['fill'])}); if (!e) return false; e.value = {json.dumps(step['value'])}; return true; }})()")
            if not found:
                raise RuntimeError(f"nothing matches {step['fill']}")
        elif "click" in step:
            browser.events.clear()
            found = browser.evaluate(f"(function() {{ var e = document.querySelector({json.dumps(step['click'])}); if (!e) return false; e.click(); return true; }})()")
            if not found:
                raise RuntimeError(f"nothing matches {step['click']}")
            browser.wait_event("Page.loadEventFired", 30)
        elif "signal" in step:
            os.kill(step["signal"], 15)
        elif "screenshot" in step:
            data = browser.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
            with open(step["screenshot"], "wb") as f:
                f.write(base64.b64decode(data))
        elif "sleep" in step:
            time.sleep(step["sleep"])
        else:
            raise RuntimeError(f"unknown step {step}")
    return results


def main():
    browser = Browser(sys.argv[1])
    try:
        results = run(browser, json.loads(sys.argv[2]))
        print(json.dumps({"results": results}))
    except Exception as error:
        try:
            text = browser.evaluate("document.body ? document.body.innerText : ''")
        except Exception:
            text = "(no page text)"
        print(json.dumps({"error": str(error), "page": text}))
        sys.exit(1)
    finally:
        browser.close()


if __name__ == "__main__":
    main()
