// The latent space explorer: the VAE's decoder in plain JavaScript and the
// page around it. The data (weights, encoded test images) come from the
// JSON block that vae/web.py writes; see that module's docstring.
(function () {
  'use strict';

  var DATA = JSON.parse(document.getElementById('vae-data').textContent);
  var SIDE = 28;
  var N_IN = DATA.model.n_in;
  var L = DATA.model.n_latent;

  // ------------------------------------------------------------ data

  function bytesOf(b64) {
    var text = atob(b64);
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes;
  }

  // IEEE 754 half precision to a number (every half is exact in float32).
  function halfToFloat(h) {
    var sign = (h & 0x8000) ? -1 : 1;
    var exponent = (h >> 10) & 0x1f;
    var fraction = h & 0x3ff;
    if (exponent === 0) return sign * fraction * Math.pow(2, -24);
    if (exponent === 31) return fraction ? NaN : sign * Infinity;
    return sign * (1 + fraction / 1024) * Math.pow(2, exponent - 15);
  }

  // Little-endian float32 or float16 bytes as a Float32Array.
  function floats(b64, dtype) {
    var bytes = bytesOf(b64);
    var view = new DataView(bytes.buffer);
    var out, i;
    if (dtype === 'float16') {
      out = new Float32Array(bytes.length / 2);
      for (i = 0; i < out.length; i++) {
        out[i] = halfToFloat(view.getUint16(2 * i, true));
      }
    } else if (dtype === 'float32') {
      out = new Float32Array(bytes.length / 4);
      for (i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
    } else {
      throw new Error('unknown weight dtype ' + dtype);
    }
    return out;
  }

  function rows(flat, width) {
    var out = [];
    for (var i = 0; i < flat.length; i += width) {
      out.push(Array.prototype.slice.call(flat, i, i + width));
    }
    return out;
  }

  // ---------------------------------------------------------- decoder

  // Chainer's formulas (chainer.functions, v7), elementwise.
  var ACTIVATIONS = {
    tanh: Math.tanh,
    softplus: function (x) {  // beta = 1
      return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
    },
    relu: function (x) { return x > 0 ? x : 0; },
    sigmoid: function (x) { return 0.5 * Math.tanh(0.5 * x) + 0.5; },
    elu: function (x) { return x >= 0 ? x : Math.expm1(x); },  // alpha = 1
    leaky_relu: function (x) { return x >= 0 ? x : 0.2 * x; }  // slope 0.2
  };
  var act = ACTIVATIONS[DATA.model.activation];
  if (!act) throw new Error('unknown activation ' + DATA.model.activation);

  var LAYERS = DATA.weights.layers.map(function (layer) {
    return {
      nOut: layer.shape[0], nIn: layer.shape[1],
      W: floats(layer.W, DATA.weights.dtype),  // (nOut, nIn), row-major
      b: floats(layer.b, DATA.weights.dtype)
    };
  });

  // y = W x + b, accumulated in float64.
  function dense(layer, x) {
    var y = new Float64Array(layer.nOut);
    var W = layer.W, nIn = layer.nIn;
    for (var o = 0; o < layer.nOut; o++) {
      var sum = 0, row = o * nIn;
      for (var i = 0; i < nIn; i++) sum += W[row + i] * x[i];
      y[o] = sum + layer.b[o];
    }
    return y;
  }

  function applyInPlace(f, x) {
    for (var i = 0; i < x.length; i++) x[i] = f(x[i]);
    return x;
  }

  // VAE.decode: act(ld1 z), act(ld2 h1), ld3 h2, then the sigmoid unless
  // logits are asked for.
  function decode(z, logits) {
    if (z.length !== L) {
      throw new Error('z has ' + z.length + ' values, the model ' + L);
    }
    var h1 = applyInPlace(act, dense(LAYERS[0], z));
    var h2 = applyInPlace(act, dense(LAYERS[1], h1));
    var out = dense(LAYERS[2], h2);
    return logits ? out : applyInPlace(ACTIVATIONS.sigmoid, out);
  }

  // ------------------------------------------------------------ drawing

  function grayLevel(p) {  // as vae.figures.to_uint8
    return Math.floor(Math.min(Math.max(p, 0), 1) * 255 + 0.5);
  }

  function drawDigit(canvas, pixels, isBytes) {
    var ctx = canvas.getContext('2d');
    var image = ctx.createImageData(SIDE, SIDE);
    for (var i = 0; i < SIDE * SIDE; i++) {
      var v = isBytes ? pixels[i] : grayLevel(pixels[i]);
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
      image.data[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  function canvasGray(canvas) {  // the red channel of a digit canvas
    var data = canvas.getContext('2d').getImageData(0, 0, SIDE, SIDE).data;
    var out = [];
    for (var i = 0; i < SIDE * SIDE; i++) out.push(data[4 * i]);
    return out;
  }

  function fmt(v) { return (v >= 0 ? '\u2007' : '\u2212') + Math.abs(v).toFixed(3); }
  function fmtVector(z) {
    return '(' + Array.prototype.map.call(z, fmt).join(', ') + ')';
  }

  var $ = function (id) { return document.getElementById(id); };

  // ------------------------------------------------------- page state

  var digitImages = bytesOf(DATA.digits.images);  // (10, 784) uint8
  var digitMu = rows(floats(DATA.digits.mu, 'float32'), L);  // (10, L)
  var recon = DATA.reconstructions;
  var reconImages = bytesOf(recon.images);  // (N, 784) uint8
  var reconMu = rows(floats(recon.mu, 'float32'), L);  // (N, L)
  var sliderExtent = DATA.slider_extent;

  var state = { z: new Float64Array(L), pixels: null, source: 'init' };
  var sliders = [];
  var plane = null;

  function setZ(z, source) {
    state.z = Float64Array.from(z);
    state.pixels = decode(state.z);
    state.source = source;
    drawDigit($('digit'), state.pixels);
    $('z-readout').textContent = fmtVector(state.z);
    sliders.forEach(function (slider, i) {
      if (source !== 'slider' + i) slider.input.value = String(state.z[i]);
      slider.output.textContent = fmt(state.z[i]);
    });
    if (plane) plane.redraw();
  }

  // ---------------------------------------------------------- sliders

  function buildSliders() {
    var box = $('sliders');
    for (var i = 0; i < L; i++) {
      var row = document.createElement('div');
      row.className = 'slider-row';
      var id = 'z' + (i + 1);
      var label = document.createElement('label');
      label.htmlFor = id;
      label.textContent = 'z' + (i + 1);
      var input = document.createElement('input');
      input.type = 'range';
      input.id = id;
      input.min = String(-sliderExtent);
      input.max = String(sliderExtent);
      input.step = '0.01';
      input.value = '0';
      var output = document.createElement('output');
      output.htmlFor = id;
      row.appendChild(label);
      row.appendChild(input);
      row.appendChild(output);
      box.appendChild(row);
      sliders.push({ input: input, output: output });
      input.addEventListener('input', (function (k) {
        return function (event) {
          var z = Float64Array.from(state.z);
          z[k] = Number(event.target.value);
          setZ(z, 'slider' + k);
        };
      })(i));
    }
  }

  // Box-Muller: standard normal samples from Math.random.
  function standardNormal() {
    var u = 1 - Math.random(), v = Math.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  // ---------------------------------------------------- interpolation

  function interpolationZ() {
    var t = Number($('t').value);
    var a = digitMu[Number($('start').value)];
    var b = digitMu[Number($('end').value)];
    var z = new Float64Array(L);
    for (var i = 0; i < L; i++) z[i] = (1 - t) * a[i] + t * b[i];
    return z;
  }

  function buildInterpolation() {
    ['start', 'end'].forEach(function (id) {
      var select = $(id);
      for (var d = 0; d < 10; d++) {
        var option = document.createElement('option');
        option.value = String(d);
        option.textContent = String(d);
        select.appendChild(option);
      }
      select.value = String(DATA.interpolation[id]);
    });
    $('t').step = String(1 / DATA.interpolation.steps);
    function showEnds() {
      ['start', 'end'].forEach(function (id) {
        var d = Number($(id).value);
        drawDigit($(id + '-image'),
                  digitImages.subarray(d * N_IN, (d + 1) * N_IN), true);
      });
    }
    function update() {
      showEnds();
      $('t-value').textContent = Number($('t').value).toFixed(4);
      setZ(interpolationZ(), 'interpolation');
    }
    $('start').addEventListener('change', update);
    $('end').addEventListener('change', update);
    $('t').addEventListener('input', update);
    showEnds();
    $('t-value').textContent = Number($('t').value).toFixed(4);
  }

  // ---------------------------------------------------- reconstruction

  function showReconstruction() {
    var k = Number($('recon-index').value);
    drawDigit($('recon-input'),
              reconImages.subarray(k * N_IN, (k + 1) * N_IN), true);
    drawDigit($('recon-output'), decode(reconMu[k]));
    $('recon-value').textContent = '#' + k;
    $('recon-caption').textContent = 'test image #' + k + ' (a ' +
      recon.labels[k] + ')';
    $('recon-mu').textContent = fmtVector(reconMu[k]);
  }

  function buildReconstruction() {
    var slider = $('recon-index');
    slider.max = String(recon.count - 1);
    slider.addEventListener('input', showReconstruction);
    $('recon-use').addEventListener('click', function () {
      setZ(reconMu[Number(slider.value)], 'reconstruction');
    });
    showReconstruction();
  }

  // ------------------------------------------------------------- plane

  function buildPlane(spec) {
    var canvas = $('plane');
    var ctx = canvas.getContext('2d');
    var size = canvas.width;
    var R = spec.extent;
    var points = rows(floats(spec.mu, 'float32'), 2);
    var labels = bytesOf(spec.labels);
    var showMap = false, mapImage = null;

    function toPixel(z1, z2) {
      return [(z1 + R) / (2 * R) * size, (R - z2) / (2 * R) * size];
    }

    // The scatter and axes, drawn once.
    var base = document.createElement('canvas');
    base.width = base.height = size;
    (function drawBase() {
      var b = base.getContext('2d');
      b.fillStyle = '#fff';
      b.fillRect(0, 0, size, size);
      b.strokeStyle = '#d9dbe0';
      b.lineWidth = 1;
      b.fillStyle = '#55575e';
      b.font = '12px system-ui, sans-serif';
      var tick = R > 6 ? 2 : 1;
      for (var v = tick * Math.ceil(-R / tick); v <= R; v += tick) {
        var p = toPixel(v, v);
        b.beginPath();
        b.moveTo(p[0], 0); b.lineTo(p[0], size);
        b.moveTo(0, p[1]); b.lineTo(size, p[1]);
        b.stroke();
        if (Math.abs(v) < R - 0.25 * tick) {  // not on the border
          b.fillText(String(v), p[0] + 3, size - 4);
          b.fillText(String(v), 3, p[1] - 3);
        }
      }
      b.fillText('z1 \u2192', size - 44, size - 18);
      b.fillText('z2 \u2191', 6, 14);
      b.globalAlpha = 0.6;  // as scatter.png
      for (var i = 0; i < points.length; i++) {
        var q = toPixel(points[i][0], points[i][1]);
        b.fillStyle = DATA.palette[labels[i]];
        b.beginPath();
        b.arc(q[0], q[1], 2, 0, 2 * Math.PI);
        b.fill();
      }
      b.globalAlpha = 1;
    })();

    // The 25x25 map: tile (r, c) decodes z = (lo + c*step, hi - r*step),
    // as vae.figures.latent_grid orders it.
    function mapTiles() {
      var n = spec.map.tiles, lo = spec.map.extent[0], hi = spec.map.extent[1];
      var step = (hi - lo) / (n - 1);
      var tiles = [];
      for (var r = 0; r < n; r++) {
        for (var c = 0; c < n; c++) {
          tiles.push(decode([lo + c * step, hi - r * step]));
        }
      }
      return tiles;
    }

    function buildMapImage() {
      var n = spec.map.tiles;
      var tiles = mapTiles();
      var image = document.createElement('canvas');
      image.width = image.height = n * SIDE;
      var ictx = image.getContext('2d');
      var data = ictx.createImageData(n * SIDE, n * SIDE);
      tiles.forEach(function (pixels, k) {
        var r = Math.floor(k / n), c = k % n;
        for (var y = 0; y < SIDE; y++) {
          for (var x = 0; x < SIDE; x++) {
            var v = grayLevel(pixels[y * SIDE + x]);
            var o = 4 * ((r * SIDE + y) * n * SIDE + c * SIDE + x);
            data.data[o] = data.data[o + 1] = data.data[o + 2] = v;
            data.data[o + 3] = 255;
          }
        }
      });
      ictx.putImageData(data, 0, 0);
      return image;
    }

    function redraw() {
      ctx.drawImage(base, 0, 0);
      if (showMap && mapImage) {
        var n = spec.map.tiles, lo = spec.map.extent[0], hi = spec.map.extent[1];
        var half = (hi - lo) / (n - 1) / 2;
        var a = toPixel(lo - half, hi + half), b = toPixel(hi + half, lo - half);
        ctx.imageSmoothingEnabled = false;
        ctx.globalAlpha = 0.88;
        ctx.drawImage(mapImage, a[0], a[1], b[0] - a[0], b[1] - a[1]);
        ctx.globalAlpha = 1;
      }
      var start = digitMu[Number($('start').value)];
      var end = digitMu[Number($('end').value)];
      var s = toPixel(start[0], start[1]), e = toPixel(end[0], end[1]);
      ctx.lineWidth = 2;
      ctx.strokeStyle = '#d11';
      ctx.beginPath(); ctx.moveTo(s[0], s[1]); ctx.lineTo(e[0], e[1]); ctx.stroke();
      [s, e].forEach(function (p) {
        ctx.fillStyle = '#d11';
        ctx.beginPath(); ctx.arc(p[0], p[1], 4, 0, 2 * Math.PI); ctx.fill();
      });
      var m = toPixel(state.z[0], state.z[1]);
      ctx.lineWidth = 3;
      ctx.strokeStyle = '#fff';
      ctx.beginPath(); ctx.arc(m[0], m[1], 7, 0, 2 * Math.PI); ctx.stroke();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = '#000';
      ctx.beginPath(); ctx.arc(m[0], m[1], 7, 0, 2 * Math.PI); ctx.stroke();
    }

    // The pointer's z: the canvas has no border or padding, so its box is
    // the plane [-R, R]^2, whatever its size on screen.
    function zAt(event) {
      var rect = canvas.getBoundingClientRect();
      var fx = (event.clientX - rect.left) / rect.width;
      var fy = (event.clientY - rect.top) / rect.height;
      return [-R + 2 * R * fx, R - 2 * R * fy];
    }
    canvas.addEventListener('pointerdown', function (event) {
      canvas.setPointerCapture(event.pointerId);
      setZ(zAt(event), 'pointer');
    });
    canvas.addEventListener('pointermove', function (event) {
      // a mouse decodes as it hovers; touch and pen while pressed
      if (event.pointerType !== 'mouse' && !event.buttons) return;
      setZ(zAt(event), 'pointer');
    });

    $('map-toggle').addEventListener('change', function (event) {
      showMap = event.target.checked;
      if (showMap && !mapImage) {
        $('map-status').textContent = 'Decoding 625 tiles\u2026';
        // let the message paint before the decoder runs
        setTimeout(function () {
          if (!mapImage) mapImage = buildMapImage();
          $('map-status').textContent = '';
          redraw();
        }, 0);
      }
      redraw();
    });

    var legend = $('legend');
    DATA.palette.forEach(function (colour, d) {
      var item = document.createElement('li');
      var swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.backgroundColor = colour;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(String(d)));
      legend.appendChild(item);
    });

    $('plane-box').hidden = false;
    $('plane-controls').hidden = false;
    return {
      redraw: redraw,
      mapTile: function (r, c) {  // the gray levels of tile (r, c)
        if (!mapImage) mapImage = buildMapImage();
        var data = mapImage.getContext('2d').getImageData(
          c * SIDE, r * SIDE, SIDE, SIDE).data;
        var out = [];
        for (var i = 0; i < SIDE * SIDE; i++) out.push(data[4 * i]);
        return out;
      },
      mapShown: function () { return showMap && !!mapImage; },
      zAt: zAt
    };
  }

  // -------------------------------------------------------------- info

  function describe() {
    var m = DATA.model, w = DATA.weights;
    $('model-info').textContent = 'Decoder ' + m.n_latent + '-' + m.n_h +
      '-' + m.n_h + '-' + m.n_in + ', ' + m.activation + ' then sigmoid' +
      (m.title ? ' \u00b7 ' + m.title : '');
    var text = 'Decoder weights stored as ' + w.dtype + ' and run here in ' +
      'JavaScript (float64 arithmetic). ';
    if (w.dtype === 'float16') {
      text += 'Rounding them to float16 changed a decoded pixel by at most ' +
        w.max_error.toExponential(1) + ' against the float32 model over ' +
        w.n_probes + ' decodes of the z this page shows (the embedded ' +
        'test codes, samples of the prior and of the sliders\u2019 range' +
        (L === 2 ? ', the map' : '') + '), measured when it was made.';
    } else {
      text += 'They are the model\u2019s float32 weights, unrounded.';
    }
    $('weights-info').textContent = text;
  }

  // -------------------------------------------------------------- start

  buildSliders();
  if (DATA.plane) {
    plane = buildPlane(DATA.plane);
  } else {
    document.querySelector('.explore-grid').classList.add('no-plane');
    Array.prototype.forEach.call(document.querySelectorAll('.plane-only'),
      function (el) { el.hidden = true; });
  }
  buildInterpolation();
  buildReconstruction();
  $('prior').addEventListener('click', function () {
    var z = new Float64Array(L);
    for (var i = 0; i < L; i++) z[i] = standardNormal();
    setZ(z, 'prior');
  });
  describe();
  setZ(interpolationZ(), 'interpolation');

  // For the tests and the curious: the decoder and what the page shows.
  window.vaeExplorer = {
    decode: function (z, logits) { return Array.from(decode(z, logits)); },
    activation: function (name, xs) {
      return xs.map(ACTIVATIONS[name]);
    },
    halfToFloat: halfToFloat,
    setZ: function (z) { setZ(z, 'api'); },
    state: function () {
      return { z: Array.from(state.z), source: state.source,
               shown: canvasGray($('digit')) };
    },
    shown: function (id) { return canvasGray($(id)); },
    plane: plane,
    ready: true
  };
})();
