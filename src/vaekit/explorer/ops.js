// vaekit latent explorer, the decoder: runs the operations data.js lists, z -> image.
//
// The list comes from the model itself (`VAE.explorer_decoder`, format in
// vaekit/models/export.py), the likelihood's mean included, so this file knows
// operations, not models: a new architecture or likelihood needs no change here
// unless it needs a new kind of operation. Loaded as a classic <script> before
// explorer.js (a module script would not load from file://); it leaves one global,
// window.VAEKIT_OPS = { typed, makeDecoder }.
//
// Why a hand-written decoder rather than ONNX Runtime Web: the decoders are a few
// dense layers, residual cells and transposed convolutions (~3 M multiply-adds for
// the default conv model, a few milliseconds here), so plain JS is fast enough for
// live updates; it needs no multi-megabyte WebAssembly runtime vendored into every
// output folder, no npm install when the page is built, and it keeps the numerics
// in our hands (see "Numerics" below).
"use strict";

(function () {
  // ------------------------------------------------------------------ data

  const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  // base64 of little-endian values -> a typed array of `Type` (Float32Array, Uint16Array...).
  function typed(b64, Type) {
    const text = atob(b64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    if (LITTLE_ENDIAN || Type.BYTES_PER_ELEMENT === 1) return new Type(bytes.buffer);
    const view = new DataView(bytes.buffer);
    const out = new Type(bytes.length / Type.BYTES_PER_ELEMENT);
    const get = Type === Float32Array ? "getFloat32" : "getUint16";
    for (let i = 0; i < out.length; i++) out[i] = view[get](i * Type.BYTES_PER_ELEMENT, true);
    return out;
  }

  const size = (shape) => shape.reduce((a, b) => a * b, 1);

  // ------------------------------------------------------------------ decoder
  //
  // Numerics: weights, inputs and every layer's output are float32, as in PyTorch.
  // Sums are accumulated in JS doubles (the float32 products are exact in a double)
  // and rounded to float32 once per output, when stored into a Float32Array. PyTorch
  // accumulates in float32 in its own order, so the two differ by a few float32 ulps
  // per layer: far below 1e-4 in the final pixels (the browser test checks this).

  // An elementwise function, applied in place.
  function elementwise(f) {
    return (op, shape) => ({
      shape,
      run(x) {
        for (let i = 0; i < x.length; i++) x[i] = f(x[i]);
        return x;
      },
    });
  }

  // E[x] under the continuous Bernoulli with logit l, as likelihoods.continuous_bernoulli_mean:
  // 1/2 + 1/(2 tanh(l/2)) - 1/l, and its series below |l| = 1/2 where those terms cancel.
  function continuousBernoulliMean(l) {
    if (Math.abs(l) < 0.5) return 0.5 + l / 12 - l ** 3 / 720 + l ** 5 / 30240;
    return 0.5 + 0.5 / Math.tanh(l / 2) - 1 / l;
  }

  const OPS = {
    relu: elementwise((v) => (v < 0 ? 0 : v)),
    silu: elementwise((v) => v / (1 + Math.exp(-v))),
    tanh: elementwise(Math.tanh),
    sigmoid: elementwise((v) => 1 / (1 + Math.exp(-v))),
    continuous_bernoulli_mean: elementwise(continuousBernoulliMean),
    // x + a constant tensor of x's shape (a learned initial state).
    add(op, shape, t) {
      const c = t[op.tensor];
      if (size(c.shape) !== size(shape)) throw new Error(`add ${op.tensor}: input ${shape}`);
      return {
        shape,
        run(x) {
          for (let i = 0; i < x.length; i++) x[i] += c.data[i];
          return x;
        },
      };
    },
    // A conditional decoder's input: z with the one-hot of the page's chosen label after it.
    label(op, shape, t, stack, context) {
      const n = size(shape);
      const out = new Float32Array(n + op.classes);
      context.classes = op.classes;
      return {
        shape: [n + op.classes],
        run(x) {
          out.fill(0);
          out.set(x);
          out[n + context.label] = 1;
          return out;
        },
      };
    },
    // x.chunk(chunks, 0)[index]: e.g. the mean maps of a decoder that also emits variances.
    chunk(op, shape) {
      const [first, ...rest] = shape;
      if (first % op.chunks) throw new Error(`chunk: ${first} into ${op.chunks}`);
      const n = (first / op.chunks) * size(rest);
      const [start, end] = [op.index * n, (op.index + 1) * n];
      return { shape: [first / op.chunks, ...rest], run: (x) => x.subarray(start, end) };
    },
    linear(op, shape, t) {
      const W = t[op.weight];
      const b = t[op.bias];
      const [nOut, nIn] = W.shape;
      if (size(shape) !== nIn) {
        throw new Error(`linear ${op.weight}: input ${shape}, weight ${W.shape}`);
      }
      const w = W.data;
      const out = new Float32Array(nOut);
      return {
        shape: [nOut],
        run(x) {
          for (let o = 0; o < nOut; o++) {
            let s = b.data[o];
            const row = o * nIn;
            for (let i = 0; i < nIn; i++) s += w[row + i] * x[i];
            out[o] = s;
          }
          return out;
        },
      };
    },
    // Residual connections: push keeps a copy of the current tensor, add_pop adds it back.
    push(op, shape, t, stack) {
      const kept = new Float32Array(size(shape));
      stack.push(kept);
      return {
        shape,
        run(x) {
          kept.set(x);
          return x;
        },
      };
    },
    add_pop(op, shape, t, stack) {
      const kept = stack.pop();
      if (!kept || kept.length !== size(shape)) throw new Error(`add_pop: shape ${shape}`);
      return {
        shape,
        run(x) {
          for (let i = 0; i < x.length; i++) x[i] += kept[i];
          return x;
        },
      };
    },
    // PyTorch's Conv2d: weight (C_out, C_in, K, K), zero padding, square stride.
    conv2d(op, shape, t) {
      const [C, H, W] = shape;
      const weight = t[op.weight];
      const [O, Cw, K] = weight.shape;
      if (Cw !== C) throw new Error(`conv2d ${op.weight}: input ${shape}, weight ${weight.shape}`);
      const s = op.stride;
      const p = op.padding;
      const Ho = Math.floor((H + 2 * p - K) / s) + 1;
      const Wo = Math.floor((W + 2 * p - K) / s) + 1;
      const w = weight.data;
      const b = t[op.bias].data;
      const out = new Float32Array(O * Ho * Wo);
      return {
        shape: [O, Ho, Wo],
        run(x) {
          for (let o = 0; o < O; o++) {
            for (let oy = 0; oy < Ho; oy++) {
              for (let ox = 0; ox < Wo; ox++) {
                let acc = b[o];
                for (let c = 0; c < C; c++) {
                  const wBase = (o * C + c) * K * K;
                  const xBase = c * H * W;
                  for (let ky = 0; ky < K; ky++) {
                    const y = oy * s - p + ky;
                    if (y < 0 || y >= H) continue;
                    for (let kx = 0; kx < K; kx++) {
                      const xx = ox * s - p + kx;
                      if (xx >= 0 && xx < W) acc += w[wBase + ky * K + kx] * x[xBase + y * W + xx];
                    }
                  }
                }
                out[(o * Ho + oy) * Wo + ox] = acc;
              }
            }
          }
          return out;
        },
      };
    },
    reshape(op, shape) {
      if (size(op.shape) !== size(shape)) throw new Error(`reshape ${shape} to ${op.shape}`);
      return { shape: op.shape, run: (x) => x };
    },
    // PyTorch's ConvTranspose2d: weight (C_in, C_out, K, K); each input pixel adds
    // v * weight[c, o] to the K x K output patch at (iy * stride - padding, ...).
    conv_transpose2d(op, shape, t) {
      const [C, H, W] = shape;
      const weight = t[op.weight];
      const [Cw, O, K] = weight.shape;
      if (Cw !== C) {
        throw new Error(`conv_transpose2d ${op.weight}: input ${shape}, weight ${weight.shape}`);
      }
      const s = op.stride;
      const p = op.padding;
      const Ho = (H - 1) * s - 2 * p + K;
      const Wo = (W - 1) * s - 2 * p + K;
      const w = weight.data;
      const b = t[op.bias].data;
      const acc = new Float64Array(O * Ho * Wo);
      const out = new Float32Array(O * Ho * Wo);
      return {
        shape: [O, Ho, Wo],
        run(x) {
          for (let o = 0; o < O; o++) acc.fill(b[o], o * Ho * Wo, (o + 1) * Ho * Wo);
          for (let c = 0; c < C; c++) {
            for (let iy = 0; iy < H; iy++) {
              for (let ix = 0; ix < W; ix++) {
                const v = x[(c * H + iy) * W + ix];
                if (v === 0) continue; // after a ReLU about half are zero; skipping is exact
                for (let o = 0; o < O; o++) {
                  const wBase = (c * O + o) * K * K;
                  const oBase = o * Ho * Wo;
                  for (let ky = 0; ky < K; ky++) {
                    const y = iy * s - p + ky;
                    if (y < 0 || y >= Ho) continue;
                    const row = oBase + y * Wo;
                    const wRow = wBase + ky * K;
                    for (let kx = 0; kx < K; kx++) {
                      const xx = ix * s - p + kx;
                      if (xx >= 0 && xx < Wo) acc[row + xx] += v * w[wRow + kx];
                    }
                  }
                }
              }
            }
          }
          out.set(acc); // rounds each sum to float32
          return out;
        },
      };
    },
  };

  // The decoder: z (D numbers) -> the image (C * H * W, float32): the likelihood's mean.
  // A conditional one decodes for the label set with decode.setLabel (0 at first).
  function makeDecoder(spec, latentDim) {
    const all = typed(spec.weights, Float32Array);
    const tensors = {};
    for (const [name, { offset, shape }] of Object.entries(spec.tensors)) {
      tensors[name] = { shape, data: all.subarray(offset, offset + size(shape)) };
    }
    let shape = [latentDim];
    const stack = []; // copies kept by push for add_pop, in build order
    const context = { label: 0, classes: 0 }; // a conditional decoder's chosen label
    const steps = spec.ops.map((op) => {
      if (!OPS[op.op]) throw new Error(`unknown decoder operation ${op.op}`);
      const step = OPS[op.op](op, shape, tensors, stack, context);
      shape = step.shape;
      return step.run;
    });
    if (stack.length) throw new Error(`${stack.length} push without an add_pop`);
    const zBuffer = new Float32Array(latentDim);
    function decode(z) {
      zBuffer.set(z); // PyTorch decodes float32 codes: round z first
      let x = zBuffer;
      for (const run of steps) x = run(x);
      return Float32Array.from(x); // a copy: the steps reuse their buffers
    }
    decode.outputShape = shape;
    decode.classes = context.classes; // 0: not conditional
    decode.setLabel = (label) => {
      if (!(label >= 0 && label < context.classes)) throw new Error(`no label ${label}`);
      context.label = label;
    };
    return decode;
  }

  window.VAEKIT_OPS = { typed, makeDecoder };
})();
