#!/usr/bin/env bash
# Runs a small echo robot on the official DingTalk Stream SDK (dingtalk-stream from PyPI,
# installed into .venv) against the local sandbox, posts a message through the control API
# and checks that the SDK's reply arrives through the session webhook, ACKed in the exact
# shape. Exits non-zero otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

venv=${VENV:-$root/.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import dingtalk_stream" >/dev/null 2>&1; then
    "$venv/bin/pip" install --quiet dingtalk-stream
fi

cargo build --quiet -p jitnode-sandbox --example serve
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$target/debug/examples/serve" --client-id sdk-test-app --client-secret sdk-test-secret \
    >"$work/sandbox.out" 2>"$work/sandbox.err" &
pids+=($!)
for _ in $(seq 100); do
    grep -q '^SANDBOX_URL=' "$work/sandbox.out" 2>/dev/null && break
    sleep 0.1
done
url=$(sed -n 's/^SANDBOX_URL=//p' "$work/sandbox.out")
[ -n "$url" ] || { echo "sandbox did not start"; cat "$work/sandbox.err"; exit 1; }

DINGTALK_OPENAPI_ENDPOINT=$url DINGTALK_CLIENT_ID=sdk-test-app DINGTALK_CLIENT_SECRET=sdk-test-secret \
    "$venv/bin/python" tests/python_sdk_echo.py >"$work/sdk.log" 2>&1 &
pids+=($!)

# Helpers in Python so the script needs nothing beyond python3 and cargo.
check() { "$venv/bin/python" - "$url" "$@"; }

check <<'PY'
import json, sys, time, urllib.request
url = sys.argv[1]
def get(path):
    with urllib.request.urlopen(url + path, timeout=5) as r:
        return json.load(r)
def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)
deadline = time.time() + 30
while not get("/control/connections"):
    if time.time() > deadline:
        sys.exit("the SDK did not connect within 30 s")
    time.sleep(0.2)
posted = post("/control/messages", {"clientId": "sdk-test-app", "text": "hello sandbox"})
group = post("/control/messages", {"clientId": "sdk-test-app", "text": "hi group", "group": True,
                                    "conversationId": "cidSdkGroup", "senderStaffId": "staff7"})
want = ["echo: hello sandbox", "echo: hi group"]
deadline = time.time() + 20
while True:
    replies = [e.get("text") for e in get("/control/transcript")["entries"]
               if e["kind"] == "webhook" and e.get("error") is None]
    if sorted(replies) == sorted(want):
        break
    if time.time() > deadline:
        sys.exit(f"replies {replies!r}, wanted {want!r}")
    time.sleep(0.2)
for p in (posted, group):
    ack = get(f"/control/wait-ack?messageId={p['messageId']}&timeoutMs=5000")
    if ack["code"] != 200 or ack["problems"]:
        sys.exit(f"bad ACK from the SDK: {ack}")
problems = get("/control/problems")
if problems:
    sys.exit(f"protocol problems: {problems}")
print("python SDK echo: ok (" + ", ".join(replies) + ")")
PY
