// The official `openai` npm client against the EdgeCoder IDE provider. Run by tests/ide
// (clients_test.cpp) with:
//   BASE_URL  http://127.0.0.1:<port>/v1      API_KEY  the provider's key ("" = none)
//   MODEL     the model to chat with          EXPECT   the exact reply the fake model gives
//   MODE      "local" (relay to a fake model server) or "mesh" (through the coordinator)
//   TOOL      name of the tool call the fake model makes when tools are offered (local mode)
// Every check prints "ok <name>"; the first failure throws and the exit code is non-zero.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const env = (k, d = '') => process.env[k] ?? d;
const client = new OpenAI({ baseURL: env('BASE_URL'), apiKey: env('API_KEY') || 'none', maxRetries: 0, timeout: 120000 });
const model = env('MODEL');
const expect = env('EXPECT');
const ok = (name) => console.log(`ok ${name}`);

async function local() {
  const models = await client.models.list();
  const entry = models.data.find((m) => m.id === model);
  assert.ok(entry, `models.list() has ${model}: ${JSON.stringify(models.data)}`);
  assert.equal(entry.object, 'model');
  assert.equal(typeof entry.context_length, 'number');
  assert.equal(typeof entry.supports_tools, 'boolean');
  ok('models.list');

  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Say hello' }] }];
  const reply = await client.chat.completions.create({ model, messages, temperature: 0.2, max_tokens: 64 });
  assert.equal(reply.object, 'chat.completion');
  assert.equal(reply.choices[0].message.role, 'assistant');
  assert.equal(reply.choices[0].message.content, expect);
  assert.equal(reply.choices[0].finish_reason, 'stop');
  assert.equal(typeof reply.usage.total_tokens, 'number');
  ok('chat non-streaming');

  const stream = await client.chat.completions.create({ model, messages, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk', JSON.stringify(chunk));
    assert.ok(!('route_info' in chunk), 'no route_info frame for a plain OpenAI client');
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    text += chunk.choices[0].delta.content ?? '';
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(text, expect);
  assert.equal(finish, 'stop');
  assert.ok(usage && typeof usage.completion_tokens === 'number', 'include_usage gives a usage chunk');
  assert.ok(chunks >= 3, `streamed in pieces (${chunks} chunks)`);
  ok('chat streaming');

  const tools = [{ type: 'function', function: { name: env('TOOL'), description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  const called = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools });
  const call = called.choices[0].message.tool_calls?.[0];
  assert.ok(call, `tool call passed through: ${JSON.stringify(called)}`);
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, env('TOOL'));
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
  assert.equal(called.choices[0].finish_reason, 'tool_calls');
  ok('tool call non-streaming');

  const runner = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, stream: true });
  const pieces = {};
  let streamedFinish = null;
  for await (const chunk of runner) {
    const c = chunk.choices[0];
    if (!c) continue;
    for (const t of c.delta.tool_calls ?? []) {
      pieces[t.index] ??= { name: '', args: '' };
      if (t.function?.name) pieces[t.index].name = t.function.name;
      pieces[t.index].args += t.function?.arguments ?? '';
    }
    if (c.finish_reason) streamedFinish = c.finish_reason;
  }
  assert.equal(pieces[0]?.name, env('TOOL'));
  assert.deepEqual(JSON.parse(pieces[0].args), { city: 'Paris' });
  assert.equal(streamedFinish, 'tool_calls');
  ok('tool call streaming');

  // The answer to a tool result goes back with the history (the fake answers with text again).
  const followUp = await client.chat.completions.create({
    model,
    messages: [{ role: 'user', content: 'Weather in Paris?' }, called.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '{"temp": 18}' }],
  });
  assert.equal(followUp.choices[0].message.content, expect);
  ok('tool result round trip');

  await assert.rejects(client.chat.completions.create({ model: 'no-such-model:1b', messages }), (err) => {
    assert.ok(err instanceof OpenAI.APIError, String(err));
    assert.equal(err.status, 404);
    assert.equal(err.code, 'model_not_found');
    assert.equal(err.type, 'invalid_request_error');
    return true;
  });
  ok('error object: unknown model');

  await assert.rejects(client.chat.completions.create({ model, messages: [] }), (err) => {
    assert.equal(err.status, 400);
    assert.equal(err.type, 'invalid_request_error');
    assert.match(err.message, /messages/);
    return true;
  });
  ok('error object: bad request');

  if (env('API_KEY')) {
    const wrong = new OpenAI({ baseURL: env('BASE_URL'), apiKey: 'wrong-key', maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, String(err));
      assert.equal(err.status, 401);
      assert.equal(err.code, 'invalid_api_key');
      return true;
    });
    ok('error object: wrong API key');
  }
}

async function mesh() {
  const models = await client.models.list();
  assert.ok(models.data.some((m) => m.id === model), `models.list() has ${model}`);
  ok('models.list has the mesh model');
  const messages = [{ role: 'user', content: env('PROMPT') }];
  const reply = await client.chat.completions.create({ model, messages });
  assert.match(reply.choices[0].message.content, new RegExp(expect));
  ok('mesh chat non-streaming');
  const stream = await client.chat.completions.create({ model, messages, stream: true });
  let text = '';
  let chunks = 0;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    chunks++;
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.match(text, /\[edgecoder mesh\] task ide-[0-9a-f]+ queued/);
  assert.match(text, new RegExp(expect));
  ok(`mesh chat streaming (${chunks} chunks)`);
}

await (env('MODE') === 'mesh' ? mesh() : local());
