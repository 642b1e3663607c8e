// The reference for cored's face detector: face-api's own JavaScript (the npm package
// @vladmandic/face-api 1.7.15, with the TensorFlow.js 4.22 it bundles, CPU backend) on the
// same weights and the same decoded pixels.
//
//   node tools/face_ref.mjs PKG_DIR [--weights W.safetensors] IN.safetensors OUT.safetensors [IN OUT]...
//
// --weights writes every float32 tensor as tfjs decodes it from the package (manifest
// names and TF layouts), to check the converter's values bit for bit.
// PKG_DIR is what tools/fetch_faces.sh caches. Each IN is a `faces_tool dump` file; its
// `rgb` (U8 [h, w, 3]) goes to the package as a tensor, and OUT receives what the package
// computes from it: `input` (F32 [512, 512, 3], the network's input: SsdMobilenetv1's
// forwardInput steps), `boxes` (F32 [5118, 4]) and `scores` (F32 [5118]) of its
// outputLayer, and `faces` (F32 [n, 5]: x0, y0, x1, y1, score in pixels) from
// locateFaces with minConfidence 0.5, maxResults 100, face-api's defaults; its metadata's
// locate_ms is the time locateFaces took (tfjs's pure JavaScript CPU backend, one thread).
// Nothing is fetched: the package comes from the cache, and no other module is needed.
//
//   node tools/face_ref.mjs PKG_DIR --bench VIDEO W H FRAME,FRAME,... CROP MARGIN
//
// --bench is the reference side of tools/bench_faces.py: what a user of face-api would run
// on a video. The ffmpeg command decodes the listed frames (0-based, a select filter) as
// RGB W x H into a pipe; each frame goes to locateFaces (face-api's defaults, as above) and
// the largest face is cropped as FaceForensics++ does (the box x MARGIN as a square around
// its centre, black outside the frame, resized bilinearly to CROP x CROP with
// tf.image.cropAndResize). One JSON line on standard output: frames, faces, the seconds of
// the whole pass (from starting ffmpeg to the last crop), and of waiting for frames,
// detecting and cropping.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const base = 8 + n;
  const out = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = info.data_offsets;
    const bytes = buf.subarray(base + b, base + e);
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    let data;
    if (info.dtype === 'U8') data = copy;
    else if (info.dtype === 'F32') data = new Float32Array(copy.buffer);
    else throw new Error(`${file}: ${name}: dtype ${info.dtype} is not read here`);
    out[name] = { shape: info.shape, data };
  }
  return out;
}

function writeSafetensors(file, tensors, metadata) {
  const header = { __metadata__: metadata };
  const blobs = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + bytes.length] };
    blobs.push(bytes);
    off += bytes.length;
  }
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  fs.writeFileSync(file + '.part', Buffer.concat([len, Buffer.from(text), ...blobs]));
  fs.renameSync(file + '.part', file);
}

// Loads face-api from the package (with the platform set up as explained in main) and
// returns it, tfjs and the decoded weights.
async function loadFaceApi(pkg) {
  // The bundle sets up its Node platform when it loads, from the `util` module, which the
  // browser bundle leaves out (an empty stub: "TextEncoder is not a constructor"). Hidden
  // from Node's version while it loads, it sets up none, and gets this one: Node's own
  // text codecs, clock and typed-array test. Then face-api sets up its own environment,
  // Node's. Only tensors are passed to it, never images.
  const versions = process.versions;
  Object.defineProperty(process, 'versions', { value: { ...versions, node: undefined }, configurable: true, writable: true });
  const faceapi = await import(pathToFileURL(path.resolve(pkg, 'dist/face-api.esm.js')).href);
  Object.defineProperty(process, 'versions', { value: versions, configurable: true, writable: true });
  const { tf } = faceapi;
  tf.env().setPlatform('node', {
    fetch: (...a) => fetch(...a),
    now: () => performance.now(),
    encode: (text) => new TextEncoder().encode(text),
    decode: (bytes, encoding) => new TextDecoder(encoding).decode(bytes),
    isTypedArray: (a) => ArrayBuffer.isView(a) && !(a instanceof DataView),
  });
  faceapi.env.initialize();
  await tf.setBackend('cpu');
  await tf.ready();
  const manifest = JSON.parse(fs.readFileSync(path.join(pkg, 'model/ssd_mobilenetv1_model-weights_manifest.json'), 'utf8'));
  const bin = fs.readFileSync(path.join(pkg, 'model', manifest[0].paths[0]));
  const weights = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), manifest[0].weights);
  return { faceapi, tf, weights };
}

// Frames of `video` (the 0-based indices in `frames`) as RGB w x h buffers, decoded by the
// ffmpeg command into a pipe, yielded as they arrive.
async function* ffmpegFrames(video, w, h, frames) {
  const select = frames.map((n) => `eq(n\\,${n})`).join('+');
  const ff = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-i', video, '-vf', `select=${select},format=rgb24`,
    '-vsync', '0', '-f', 'rawvideo', 'pipe:1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => ff.on('close', resolve));
  const size = w * h * 3;
  let buf = Buffer.alloc(0);
  for await (const chunk of ff.stdout) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= size) {
      yield buf.subarray(0, size);
      buf = buf.subarray(size);
    }
  }
  const code = await exited;
  if (code !== 0) throw new Error(`ffmpeg exited ${code} on ${video}`);
}

async function bench(pkg, video, w, h, frames, crop, margin) {
  const { faceapi, tf, weights } = await loadFaceApi(pkg);
  const net = new faceapi.SsdMobilenetv1();
  net.loadFromWeightMap(weights);
  const out = { frames: 0, frames_with_face: 0, faces: 0, total_s: 0, wait_s: 0, detect_s: 0, crop_s: 0 };
  const t0 = performance.now();
  let t = t0;
  for await (const rgb of ffmpegFrames(video, w, h, frames)) {
    const t1 = performance.now();
    out.wait_s += (t1 - t) / 1e3;
    const image = tf.tensor3d(Int32Array.from(rgb), [h, w, 3], 'int32');
    const faces = await net.locateFaces(image, { minConfidence: 0.5, maxResults: 100 });
    const t2 = performance.now();
    out.detect_s += (t2 - t1) / 1e3;
    out.frames++;
    out.faces += faces.length;
    if (faces.length) {
      const b = faces.reduce((a, d) => (d.box.width * d.box.height > a.box.width * a.box.height ? d : a)).box;
      const side = margin * Math.max(b.width, b.height);
      let x0 = b.x + b.width / 2 - side / 2, y0 = b.y + b.height / 2 - side / 2;
      if (side <= w) x0 = Math.min(Math.max(x0, 0), w - side);
      if (side <= h) y0 = Math.min(Math.max(y0, 0), h - side);
      const face = tf.tidy(() => tf.image.cropAndResize(tf.expandDims(tf.cast(image, 'float32'), 0),
        [[y0 / h, x0 / w, (y0 + side) / h, (x0 + side) / w]], [0], [crop, crop], 'bilinear', 0));
      face.dataSync();
      face.dispose();
      out.frames_with_face++;
    }
    image.dispose();
    t = performance.now();
    out.crop_s += (t - t2) / 1e3;
  }
  out.total_s = (performance.now() - t0) / 1e3;
  console.log(JSON.stringify(out));
}

async function main() {
  const args = process.argv.slice(2);
  if (args[1] === '--bench') {
    if (args.length !== 8) {
      console.error('usage: node tools/face_ref.mjs PKG_DIR --bench VIDEO W H FRAME,FRAME,... CROP MARGIN');
      process.exit(2);
    }
    await bench(args[0], args[2], Number(args[3]), Number(args[4]), args[5].split(',').map(Number), Number(args[6]),
      Number(args[7]));
    return;
  }
  let weightsOut = null;
  if (args[1] === '--weights') {
    weightsOut = args[2];
    args.splice(1, 2);
  }
  if (args.length < 1 || args.length % 2 !== 1 || (args.length < 3 && !weightsOut)) {
    console.error('usage: node tools/face_ref.mjs PKG_DIR [--weights W.safetensors] IN.safetensors OUT.safetensors [IN OUT]...');
    process.exit(2);
  }
  const pkg = args[0];
  const { faceapi, tf, weights } = await loadFaceApi(pkg);
  if (weightsOut) {
    const out = {};
    for (const [name, t] of Object.entries(weights)) {
      if (t.dtype === 'float32') out[name] = { shape: t.shape, data: t.dataSync() };
    }
    writeSafetensors(weightsOut, out, { source: 'tfjs io.decodeWeights' });
  }
  const net = new faceapi.SsdMobilenetv1();
  net.loadFromWeightMap(weights);

  // locateFaces runs forwardInput once: keep a copy of its raw outputs on the way.
  const forwardInput = net.forwardInput.bind(net);
  let raw = null;
  net.forwardInput = (input) => {
    const out = forwardInput(input);
    raw = { boxes: out.boxes[0].dataSync().slice(), scores: out.scores[0].dataSync().slice() };
    return out;
  };

  for (let i = 1; i < args.length; i += 2) {
    const dump = readSafetensors(args[i]);
    const [h, w] = dump.rgb.shape;
    const image = tf.tensor3d(Int32Array.from(dump.rgb.data), [h, w, 3], 'int32');
    const netInput = await faceapi.toNetInput(image);
    const input = tf.tidy(() => tf.sub(tf.div(tf.cast(netInput.toBatchTensor(512, false), 'float32'), 127.5), 1));
    const t0 = performance.now();
    const faces = await net.locateFaces(image, { minConfidence: 0.5, maxResults: 100 });
    const ms = performance.now() - t0;
    const f = new Float32Array(5 * faces.length);
    faces.forEach((d, k) => {
      const b = d.box;
      f.set([b.x, b.y, b.x + b.width, b.y + b.height, d.score], 5 * k);
    });
    writeSafetensors(args[i + 1], {
      input: { shape: [512, 512, 3], data: input.dataSync() },
      boxes: { shape: [5118, 4], data: raw.boxes },
      scores: { shape: [5118], data: raw.scores },
      faces: { shape: [faces.length, 5], data: f },
    }, { locate_ms: ms.toFixed(1) });
    console.error(`face_ref: ${args[i]}: ${faces.length} faces in ${ms.toFixed(0)} ms`);
    tf.dispose([image, input]);
  }
}

main().catch((e) => {
  console.error(`face_ref: error: ${e.stack || e}`);
  process.exit(1);
});
