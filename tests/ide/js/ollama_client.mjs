// The official `ollama` npm client against the EdgeCoder IDE provider. Run by tests/ide
// (clients_test.cpp) with HOST (http://127.0.0.1:<port>), API_KEY, MODEL, EXPECT and TOOL as for
// openai_client.mjs. Every check prints "ok <name>"; a failure exits non-zero.
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';

const env = (k, d = '') => process.env[k] ?? d;
const headers = env('API_KEY') ? { Authorization: `Bearer ${env('API_KEY')}` } : {};
const ollama = new Ollama({ host: env('HOST'), headers });
const model = env('MODEL');
const expect = env('EXPECT');
const ok = (name) => console.log(`ok ${name}`);

const tags = await ollama.list();
assert.ok(tags.models.some((m) => m.name === model), JSON.stringify(tags));
ok('list');

// This client has no version() call; Ollama clients read GET /api/version directly.
const version = await (await fetch(`${env('HOST')}/api/version`, { headers })).json();
assert.equal(typeof version.version, 'string');
ok('version');

const shown = await ollama.show({ model });
assert.ok(shown.details, JSON.stringify(shown));
ok('show');

const messages = [{ role: 'user', content: 'Say hello' }];
const reply = await ollama.chat({ model, messages, options: { temperature: 0.1, num_predict: 64 } });
assert.equal(reply.message.role, 'assistant');
assert.equal(reply.message.content, expect);
assert.equal(reply.done, true);
ok('chat non-streaming');

let text = '';
let last = null;
let parts = 0;
for await (const part of await ollama.chat({ model, messages, stream: true })) {
  parts++;
  text += part.message.content;
  last = part;
}
assert.equal(text, expect);
assert.equal(last.done, true);
assert.equal(last.done_reason, 'stop');
assert.ok(parts >= 3, `streamed in pieces (${parts})`);
ok('chat streaming');

const generated = await ollama.generate({ model, prompt: 'Say hello' });
assert.equal(generated.response, expect);
ok('generate non-streaming');

let gen = '';
for await (const part of await ollama.generate({ model, prompt: 'Say hello', stream: true })) gen += part.response;
assert.equal(gen, expect);
ok('generate streaming');

const tools = [{ type: 'function', function: { name: env('TOOL'), description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
const called = await ollama.chat({ model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools });
assert.equal(called.message.tool_calls?.[0]?.function?.name, env('TOOL'), JSON.stringify(called));
assert.deepEqual(called.message.tool_calls[0].function.arguments, { city: 'Paris' });
ok('tool call passthrough');

await assert.rejects(ollama.chat({ model: 'no-such-model:1b', messages }), (err) => {
  assert.equal(err.name, 'ResponseError', String(err));
  assert.equal(err.status_code, 404);
  assert.match(err.error, /not found/);
  return true;
});
ok('error: unknown model');
