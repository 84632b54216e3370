// A stand-in for the Hugging Face hub for the browser tests: the same URL layout (/<owner>/<repo>/resolve/<rev>/
// <file>) with CORS, on a port of its own. Two repos:
//   local/SmolLM2-135M-Instruct-GGUF  the real model file from .cache/models, answered like the hub answers LFS
//                                     files: a 302 redirect to a CDN path, which streams it without Content-Length;
//   local/tiny-llama                  a small random Llama as Hugging Face ships bigger ones: config.json,
//                                     tokenizer.json and two safetensors shards named by model.safetensors.index.json.
// Every request is counted by path, so a test can tell a cached load from a download.
import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';

const MODELS = resolve('.cache/models');
export const GGUF_REPO = 'local/SmolLM2-135M-Instruct-GGUF';
export const GGUF_FILE = 'SmolLM2-135M-Instruct.Q4_1.gguf';
export const TINY_REPO = 'local/tiny-llama';
export const TINY = { layers: 2, d: 64, heads: 4, kvHeads: 2, ffn: 128, vocab: 256 };

/** safetensors bytes of `tensors` ([name, shape]) filled with small deterministic F32 values. */
function safetensors(tensors, seed) {
  let state = seed;
  const random = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.2;
  const header = {};
  const parts = [];
  let offset = 0;
  for (const [name, shape] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: n }, () => (name.endsWith('norm.weight') ? 1 : random()));
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + 4 * n] };
    parts.push(Buffer.from(data.buffer));
    offset += 4 * n;
  }
  let json = JSON.stringify({ __metadata__: { format: 'pt' }, ...header });
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, Buffer.from(json), ...parts]);
}

/** The tiny Llama's files by name. */
function tinyLlama() {
  const { layers, d, heads, kvHeads, ffn, vocab } = TINY;
  const kv = (d / heads) * kvHeads;
  const layer = (i) => [
    [`model.layers.${i}.input_layernorm.weight`, [d]],
    [`model.layers.${i}.self_attn.q_proj.weight`, [d, d]],
    [`model.layers.${i}.self_attn.k_proj.weight`, [kv, d]],
    [`model.layers.${i}.self_attn.v_proj.weight`, [kv, d]],
    [`model.layers.${i}.self_attn.o_proj.weight`, [d, d]],
    [`model.layers.${i}.post_attention_layernorm.weight`, [d]],
    [`model.layers.${i}.mlp.gate_proj.weight`, [ffn, d]],
    [`model.layers.${i}.mlp.up_proj.weight`, [ffn, d]],
    [`model.layers.${i}.mlp.down_proj.weight`, [d, ffn]],
  ];
  const shards = [
    ['model-00001-of-00002.safetensors', [['model.embed_tokens.weight', [vocab, d]], ...layer(0)]],
    ['model-00002-of-00002.safetensors', [...layer(1), ['model.norm.weight', [d]]]],
  ];
  const files = new Map(shards.map(([name, tensors], i) => [name, safetensors(tensors, i + 1)]));
  const weightMap = Object.fromEntries(shards.flatMap(([name, tensors]) => tensors.map(([t]) => [t, name])));
  const json = (value) => Buffer.from(JSON.stringify(value));
  files.set('model.safetensors.index.json', json({ metadata: { total_size: 0 }, weight_map: weightMap }));
  files.set('config.json', json({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', num_hidden_layers: layers, hidden_size: d,
    num_attention_heads: heads, num_key_value_heads: kvHeads, intermediate_size: ffn, vocab_size: vocab,
    max_position_embeddings: 256, rope_theta: 10000, rms_norm_eps: 1e-5, tie_word_embeddings: true,
  }));
  files.set('tokenizer.json', json({ version: '1.0', model: { type: 'BPE', vocab: {}, merges: [] } }));
  return files;
}

/** Starts the server on a free port: {origin, requests (path → count), tinyFiles, close()}. */
export async function startHubServer() {
  const tinyFiles = tinyLlama();
  const requests = new Map();
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    requests.set(path, (requests.get(path) ?? 0) + 1);
    res.setHeader('Access-Control-Allow-Origin', '*');
    const tiny = path.match(/^\/local\/tiny-llama\/resolve\/main\/([^/]+)$/);
    if (tiny && tinyFiles.has(tiny[1])) {
      const body = tinyFiles.get(tiny[1]);
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
      return res.end(body);
    }
    if (path === `/${GGUF_REPO}/resolve/main/${GGUF_FILE}`) {
      res.writeHead(302, { Location: `/cdn/0123abcd/${GGUF_FILE}` });
      return res.end();
    }
    if (path === `/cdn/0123abcd/${GGUF_FILE}`) {
      // No Content-Length: Node sends the body chunked, as compressing proxies and some CDNs do.
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      return createReadStream(resolve(MODELS, GGUF_FILE)).pipe(res);
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('Entry not found');
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    requests,
    tinyFiles,
    close: () => new Promise((ok) => server.close(ok)),
  };
}
