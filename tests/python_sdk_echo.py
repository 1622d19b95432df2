"""Echo robot on the official DingTalk Stream SDK (dingtalk-stream from PyPI).

Point it at the sandbox with DINGTALK_OPENAPI_ENDPOINT=<sandbox base URL> (the SDK reads it
at import time); credentials from DINGTALK_CLIENT_ID / DINGTALK_CLIENT_SECRET. Each text
message is answered through its session webhook with "echo: <text>".
"""

import logging
import os
import sys

import dingtalk_stream
from dingtalk_stream import AckMessage


class EchoHandler(dingtalk_stream.ChatbotHandler):
    async def process(self, callback: dingtalk_stream.CallbackMessage):
        incoming = dingtalk_stream.ChatbotMessage.from_dict(callback.data)
        text = (incoming.text.content or "").strip() if incoming.text else ""
        self.reply_text("echo: " + text, incoming)
        return AckMessage.STATUS_OK, "OK"


def main():
    if not os.environ.get("DINGTALK_OPENAPI_ENDPOINT"):
        sys.exit("set DINGTALK_OPENAPI_ENDPOINT to the sandbox base URL")
    logging.basicConfig(level=os.environ.get("ECHO_LOG", "WARNING"))
    credential = dingtalk_stream.Credential(
        os.environ.get("DINGTALK_CLIENT_ID", "sandbox-client-id"),
        os.environ.get("DINGTALK_CLIENT_SECRET", "sandbox-client-secret"),
    )
    client = dingtalk_stream.DingTalkStreamClient(credential)
    client.register_callback_handler(dingtalk_stream.ChatbotMessage.TOPIC, EchoHandler())
    client.start_forever()


if __name__ == "__main__":
    main()
