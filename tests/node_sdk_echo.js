// Echo robot on the official DingTalk Stream SDK for Node (npm dingtalk-stream), for
// bench/stream.sh. The SDK has no endpoint setting, so its HTTP calls to DingTalk's
// OpenAPI host are sent to DINGTALK_OPENAPI_ENDPOINT (the sandbox) instead. Credentials
// from DINGTALK_CLIENT_ID / DINGTALK_CLIENT_SECRET. Each text message is answered through
// its session webhook with "echo: <text>", and ACKed after that reply, as SDK handlers do.
'use strict';

const axios = require('axios');
const { DWClient, TOPIC_ROBOT } = require('dingtalk-stream');

const base = process.env.DINGTALK_OPENAPI_ENDPOINT;
if (!base) {
  console.error('set DINGTALK_OPENAPI_ENDPOINT to the sandbox base URL');
  process.exit(2);
}
const openapiHost = /^https:\/\/api\.dingtalk\.com/;
axios.interceptors.request.use((config) => {
  config.url = String(config.url).replace(openapiHost, base.replace(/\/$/, ''));
  return config;
});

const client = new DWClient({
  clientId: process.env.DINGTALK_CLIENT_ID || 'sandbox-client-id',
  clientSecret: process.env.DINGTALK_CLIENT_SECRET || 'sandbox-client-secret',
});

client.registerCallbackListener(TOPIC_ROBOT, async (res) => {
  const msg = JSON.parse(res.data);
  const text = ((msg.text && msg.text.content) || '').trim();
  try {
    await fetch(msg.sessionWebhook, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ msgtype: 'text', text: { content: 'echo: ' + text } }),
    });
  } finally {
    client.socketCallBackResponse(res.headers.messageId, null);
  }
});

client.connect();
