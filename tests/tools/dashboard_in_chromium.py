"""Drives headless Chromium through the coordinator's dashboard over the DevTools protocol.

Reads a JSON object from standard input: `url` (the dashboard), `token`, `screenshot` (a PNG
path), `chromium` (the browser's command). Opens the page without a cookie (the login form),
signs in with the token, waits for a running job's step, then for the same job's step to grow
without the page reloading, writes a screenshot, and prints what it saw as JSON: the first
answer's status, whether the form was shown, the job and its two steps, whether the document
stayed the same, the cookie's flags, and every console message and exception after signing in.
"""

import base64
import json
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

WAIT_SECONDS = 90


class Page:
    def __init__(self, socket_url):
        # No Origin header: Chromium refuses DevTools connections from web origins.
        self.socket = websocket.create_connection(
            socket_url, timeout=WAIT_SECONDS, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for_load(self, before):
        """Waits for a load event among the events after index `before`."""
        deadline = time.time() + WAIT_SECONDS
        while time.time() < deadline:
            if any(e.get("method") == "Page.loadEventFired" for e in self.events[before:]):
                return
            self.events.append(json.loads(self.socket.recv()))
        raise RuntimeError("the page did not load")

    def wait_until(self, what, expression):
        deadline = time.time() + WAIT_SECONDS
        while time.time() < deadline:
            value = self.evaluate(expression)
            if value is not None:
                return value
            time.sleep(0.3)
        raise RuntimeError(f"timed out waiting for {what}")


def main():
    request = json.load(sys.stdin)
    profile = tempfile.mkdtemp(prefix="slsg-chromium-")
    browser = subprocess.Popen(
        [request["chromium"], "--headless", "--no-sandbox", "--disable-gpu",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.time() + WAIT_SECONDS
        while port is None and time.time() < deadline:
            line = browser.stderr.readline()
            if not line and browser.poll() is not None:
                raise RuntimeError("chromium exited before it listened")
            if "DevTools listening on ws://" in line:
                port = line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
        if port is None:
            raise RuntimeError("chromium did not listen")
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        target = next(t for t in targets if t["type"] == "page")
        page = Page(target["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Network", "Log"):
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride", width=1400, height=1100,
                  deviceScaleFactor=1, mobile=False)

        before = len(page.events)
        page.call("Page.navigate", url=request["url"])
        page.wait_for_load(before)
        documents = [e["params"]["response"]["status"] for e in page.events[before:]
                     if e.get("method") == "Network.responseReceived"
                     and e["params"].get("type") == "Document"]
        login_form = page.evaluate("document.querySelector('form[action=\"/login\"]') !== null")

        before = signed_in = len(page.events)
        page.evaluate("document.getElementById('token').value = %s;"
                      "document.querySelector('form').submit()" % json.dumps(request["token"]))
        page.wait_for_load(before)
        # A job with many steps to go, so that it is still running at the second look.
        first = page.wait_until(
            "a running job's step",
            "(() => { for (const row of document.querySelectorAll('#running tr[data-job]')) {"
            " const cell = row.querySelector('td.step').dataset;"
            " if (cell.step !== undefined && Number(cell.total) - Number(cell.step) >= 100)"
            " return {job: row.dataset.job, step: Number(cell.step)}; }"
            " return null; })()")
        page.evaluate("window.slsgSameDocument = true")
        second = page.wait_until(
            "the step to grow",
            "(() => { const row = document.querySelector('#running tr[data-job=\"%s\"]');"
            " const step = row && row.querySelector('td.step').dataset.step;"
            " return step !== undefined && step !== null && Number(step) > %d"
            " ? Number(step) : null; })()" % (first["job"], first["step"]))
        same_document = page.evaluate("window.slsgSameDocument === true")
        shot = page.call("Page.captureScreenshot", format="png")
        with open(request["screenshot"], "wb") as out:
            out.write(base64.b64decode(shot["data"]))
        cookies = page.call("Network.getCookies")["cookies"]
        console = [e["params"] for e in page.events[signed_in:] if e.get("method") in
                   ("Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded")]
        json.dump({
            "first_status": documents[0] if documents else None,
            "login_form": login_form,
            "job": first["job"],
            "steps": [first["step"], second],
            "same_document": same_document,
            "cookies": [{"name": c["name"], "httpOnly": c["httpOnly"],
                         "sameSite": c.get("sameSite")} for c in cookies],
            "console": [json.dumps(c)[:500] for c in console],
        }, sys.stdout)
    finally:
        browser.terminate()
        browser.wait(timeout=30)


if __name__ == "__main__":
    main()
