// The web platform's parts that Segment's functions use: fetch, Headers,
// Request, Response, URL, URLSearchParams, btoa and atob. Evaluated once
// per instance, after the prelude and before the function's file.
//
// QuickJS-ng is the language alone (ES2023, with DOMException, performance
// and queueMicrotask); what a browser or Node adds is written here, after
// the WHATWG standards (URL, Fetch, HTML's base64, Encoding, DOM's abort),
// as far as a function running on a server can tell:
//
//   - URL and URLSearchParams: the URL standard's parser, for every scheme,
//     with its setters and the two-way link between url.search and
//     url.searchParams; URL.canParse and URL.parse. Hosts with non-ASCII
//     code points are lowercased, NFKC-normalized and Punycode-encoded:
//     an approximation of UTS #46, without its mapping table.
//   - Headers (names lowercased, combined values, sorted iteration,
//     getSetCookie), Request and Response (text, json, arrayBuffer, bytes,
//     clone, bodyUsed; Response.json, Response.error, Response.redirect).
//     A body is a string, URLSearchParams, ArrayBuffer or typed array; any
//     other object is its string, as the standard converts it.
//   - fetch: one synchronous call to the host (hostFetch below, whose
//     request and answer fetch.go's hostFetch describes), which
//     checks the URL against the function's configuration, follows
//     redirects (init.redirect) and bounds time and size. The response's
//     body is text. init.signal is checked before the call; mode,
//     credentials, cache, keepalive, referrer and integrity are accepted
//     and ignored.
//   - btoa and atob (HTML's forgiving base64), TextEncoder and TextDecoder
//     (UTF-8 only), AbortController and AbortSignal (AbortSignal.timeout
//     never aborts: there are no timers).
//
// Not here: streams (response.body, ReadableStream), Blob, FormData, File,
// EventTarget and Event, setTimeout, Buffer, crypto, and the browser's
// rules (CORS, forbidden header names, cookies).
//
// Costs: the engine runs in WebAssembly, where a native call (indexOf, a
// Map lookup, a property read) costs a few tenths of a microsecond, a
// regular expression's test about 2 us and 50 ns a character, and a
// JavaScript loop over a string about 0.3 us a character. The common
// cases go through few native calls: a URL already as the parser writes
// it, or a plain path against a base seen before, is kept as its text
// (new URL about 5 to 10 us); header names and values seen before are not
// checked again (new Headers of two about 12 us); fetch writes its request
// and reads the host's answer as plain text (about 35 us with its await,
// the request aside), and a response's headers are parsed when first
// read. Other URLs go through the parser's state machine (100 us and
// more, in proportion to their length); percent-encoding, UTF-8 and
// base64 of long strings loop. Bodies are held whole. Compiling this file
// costs about 13 ms an instance, in proportion to its size.
(function (g) {
  "use strict";
  function define(name, value) {
    Object.defineProperty(g, name, { value: value, writable: true, configurable: true, enumerable: false });
  }
  // The host's fetch, which the prelude's __insertfn_install hands over.
  let hostFetch;
  define("__insertfn_web_install", function (f) {
    delete g.__insertfn_web_install;
    hostFetch = f;
  });

  // INTERNAL, as a constructor's first argument, makes an object without
  // the checks of the public constructor.
  const INTERNAL = Object.freeze({});
  const fromCharCode = String.fromCharCode;
  const IteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()));
  function tag(C, name) {
    Object.defineProperty(C.prototype, Symbol.toStringTag, { value: name, configurable: true });
  }
  function needArgs(n, got, what) {
    if (got < n) throw new TypeError(what + ": " + n + " argument" + (n > 1 ? "s" : "") + " required, but only " + got + " present");
  }

  // ---- Strings --------------------------------------------------------

  // str is WebIDL's DOMString (a symbol throws, as ToString does).
  function str(v) {
    return typeof v === "string" ? v : `${v}`;
  }
  // usv is WebIDL's USVString: a lone surrogate becomes U+FFFD.
  function usv(v) {
    const s = typeof v === "string" ? v : `${v}`;
    return s.isWellFormed() ? s : s.toWellFormed();
  }
  // bytestr is WebIDL's ByteString: a code unit past U+00FF throws.
  const nonASCII = /[^\x00-\x7f]/;
  const pastLatin1 = /[\u0100-\uffff]/;
  function bytestr(v, what) {
    const s = typeof v === "string" ? v : `${v}`;
    if (pastLatin1.test(s)) throw new TypeError(what + ": " + JSON.stringify(s) + " has a character past U+00FF");
    return s;
  }
  // codesToString makes a string of the code units in a (a typed array),
  // n of them.
  function codesToString(a, n) {
    let s = "";
    for (let i = 0; i < n; i += 8192) s += fromCharCode.apply(null, a.subarray(i, Math.min(n, i + 8192)));
    return s;
  }
  // dict is WebIDL's dictionary conversion: undefined and null are empty.
  function dict(v, what) {
    if (v === undefined || v === null) return {};
    if (typeof v !== "object" && typeof v !== "function") throw new TypeError(what + " must be an object");
    return v;
  }
  // pairsOf returns the pairs of a sequence of pairs or the entries of a
  // record (WebIDL's union of both), flat: name, value, name, value...;
  // USVStrings when usvs, as they are otherwise.
  function pairsOf(init, what, usvs) {
    if (typeof init !== "object" && typeof init !== "function" || init === null) {
      throw new TypeError(what + ": expected an object, an array of pairs or a record");
    }
    const out = [];
    const it = init[Symbol.iterator];
    if (it !== undefined && it !== null) {
      if (typeof it !== "function") throw new TypeError(what + ": Symbol.iterator is not a function");
      for (const pair of init) {
        if (typeof pair !== "object" && typeof pair !== "function" || pair === null || typeof pair[Symbol.iterator] !== "function") {
          throw new TypeError(what + ": each pair must be a sequence of a name and a value");
        }
        const p = Array.isArray(pair) ? pair : Array.from(pair);
        if (p.length !== 2) throw new TypeError(what + ": each pair must have exactly two items, a name and a value, not " + p.length);
        if (usvs) out.push(usv(p[0]), usv(p[1]));
        else out.push(p[0], p[1]);
      }
      return out;
    }
    // A record: its own enumerable string keys, in order.
    const keys = Object.keys(init);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (usvs) out.push(usv(k), usv(init[k]));
      else out.push(k, init[k]);
    }
    return out;
  }

  // ---- UTF-8 ----------------------------------------------------------

  // utf8Encode encodes a string's code points, a lone surrogate as U+FFFD.
  function utf8Encode(s) {
    const n = s.length;
    if (!nonASCII.test(s)) {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = s.charCodeAt(i);
      return b;
    }
    let size = 0;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) size++;
      else if (c < 0x800) size += 2;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { size += 4; i++; }
      else size += 3;
    }
    const b = new Uint8Array(size);
    for (let i = 0, j = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        b[j++] = c;
      } else if (c < 0x800) {
        b[j++] = 0xc0 | (c >> 6);
        b[j++] = 0x80 | (c & 63);
      } else {
        if (c >= 0xd800 && c <= 0xdfff) {
          const d = i + 1 < n ? s.charCodeAt(i + 1) : 0;
          if (c <= 0xdbff && (d & 0xfc00) === 0xdc00) {
            c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            i++;
            b[j++] = 0xf0 | (c >> 18);
            b[j++] = 0x80 | ((c >> 12) & 63);
            b[j++] = 0x80 | ((c >> 6) & 63);
            b[j++] = 0x80 | (c & 63);
            continue;
          }
          c = 0xfffd;
        }
        b[j++] = 0xe0 | (c >> 12);
        b[j++] = 0x80 | ((c >> 6) & 63);
        b[j++] = 0x80 | (c & 63);
      }
    }
    return b;
  }

  // A UTF-8 decoder's state between chunks (the Encoding standard's
  // decoder: an invalid sequence is one U+FFFD, its maximal subpart).
  function DecoderState() {
    this.cp = 0;
    this.seen = 0;
    this.needed = 0;
    this.lower = 0x80;
    this.upper = 0xbf;
    this.error = false; // set when fatal decoding met an error
  }
  // utf8Decode decodes bytes with st; flush ends the stream; fatal stops at
  // the first error (st.error).
  function utf8Decode(bytes, st, flush, fatal) {
    const n = bytes.length;
    const out = new Uint16Array(2 * n + 1);
    let j = 0;
    for (let i = 0; i < n;) {
      const b = bytes[i];
      if (st.needed === 0) {
        i++;
        if (b < 0x80) { out[j++] = b; continue; }
        if (b >= 0xc2 && b <= 0xdf) {
          st.needed = 1;
          st.cp = b & 0x1f;
        } else if (b >= 0xe0 && b <= 0xef) {
          if (b === 0xe0) st.lower = 0xa0;
          else if (b === 0xed) st.upper = 0x9f;
          st.needed = 2;
          st.cp = b & 0xf;
        } else if (b >= 0xf0 && b <= 0xf4) {
          if (b === 0xf0) st.lower = 0x90;
          else if (b === 0xf4) st.upper = 0x8f;
          st.needed = 3;
          st.cp = b & 7;
        } else {
          if (fatal) { st.error = true; return ""; }
          out[j++] = 0xfffd;
        }
        continue;
      }
      if (b < st.lower || b > st.upper) {
        // The byte starts again, after the error.
        st.cp = st.needed = st.seen = 0;
        st.lower = 0x80;
        st.upper = 0xbf;
        if (fatal) { st.error = true; return ""; }
        out[j++] = 0xfffd;
        continue;
      }
      i++;
      st.lower = 0x80;
      st.upper = 0xbf;
      st.cp = (st.cp << 6) | (b & 0x3f);
      if (++st.seen !== st.needed) continue;
      const cp = st.cp;
      st.cp = st.needed = st.seen = 0;
      if (cp < 0x10000) {
        out[j++] = cp;
      } else {
        out[j++] = 0xd800 + ((cp - 0x10000) >> 10);
        out[j++] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
      }
    }
    if (flush && st.needed !== 0) {
      st.cp = st.needed = st.seen = 0;
      st.lower = 0x80;
      st.upper = 0xbf;
      if (fatal) { st.error = true; return ""; }
      out[j++] = 0xfffd;
    }
    return codesToString(out, j);
  }
  // decodeText is the Encoding standard's "UTF-8 decode" of a whole body:
  // a leading BOM is dropped.
  function decodeText(bytes) {
    if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
    return utf8Decode(bytes, new DecoderState(), true, false);
  }
  // bytesOf copies an ArrayBuffer's or a view's bytes.
  function bytesOf(v, what) {
    if (v instanceof ArrayBuffer || v instanceof SharedArrayBuffer) return new Uint8Array(v.slice(0));
    if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
    throw new TypeError(what + ": expected an ArrayBuffer or a typed array");
  }

  // ---- Percent-encoding -----------------------------------------------

  // The URL standard's percent-encode sets, one bit each, for ASCII; every
  // code point past U+007E is in all of them.
  const C0 = 1, FRAGMENT_SET = 2, QUERY_SET = 4, SPECIAL_QUERY_SET = 8, PATH_SET = 16, USERINFO_SET = 32,
    COMPONENT_SET = 64, FORM_SET = 128;
  const encodeSets = new Uint8Array(128);
  (function () {
    function add(bits, chars) {
      for (let i = 0; i < chars.length; i++) encodeSets[chars.charCodeAt(i)] |= bits;
    }
    for (let c = 0; c < 0x20; c++) encodeSets[c] = 0xff;
    encodeSets[0x7f] = 0xff;
    add(FRAGMENT_SET, " \"<>`");
    add(QUERY_SET | SPECIAL_QUERY_SET | PATH_SET | USERINFO_SET | COMPONENT_SET | FORM_SET, " \"#<>");
    add(SPECIAL_QUERY_SET, "'");
    add(PATH_SET | USERINFO_SET | COMPONENT_SET | FORM_SET, "?^`{}");
    add(USERINFO_SET | COMPONENT_SET | FORM_SET, "/:;=@[\\]|");
    add(COMPONENT_SET | FORM_SET, "$%&+,");
    add(FORM_SET, "!'()~");
  })();
  // What needs encoding in each set, for a quick test: a loop over a
  // string's characters costs about 0.4 us a character in the engine, a
  // regular expression's test a microsecond or two in all.
  const needsEncoding = [];
  needsEncoding[C0] = /[\x00-\x1f\x7f-\uffff]/;
  needsEncoding[FRAGMENT_SET] = /[\x00-\x20"<>`\x7f-\uffff]/;
  needsEncoding[QUERY_SET] = /[\x00-\x20"#<>\x7f-\uffff]/;
  needsEncoding[SPECIAL_QUERY_SET] = /[\x00-\x20"#'<>\x7f-\uffff]/;
  needsEncoding[PATH_SET] = /[\x00-\x20"#<>?^`{}\x7f-\uffff]/;
  needsEncoding[USERINFO_SET] = /[\x00-\x20"#<>?^`{}\/:;=@[\\\]|\x7f-\uffff]/;
  needsEncoding[FORM_SET] = /[^A-Za-z0-9*\-._]/;
  const HEX = "0123456789ABCDEF";
  function pct(b) {
    return "%" + HEX[b >> 4] + HEX[b & 15];
  }
  // encode is UTF-8 percent-encoding of s with the set's bit; plus makes a
  // space "+" (application/x-www-form-urlencoded).
  function encode(s, set, plus) {
    if (!needsEncoding[set].test(s)) return s;
    const n = s.length;
    let out = "";
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        if (plus && c === 0x20) out += "+";
        else if ((encodeSets[c] & set) !== 0) out += pct(c);
        else out += s[i];
      } else if (c < 0x800) {
        out += pct(0xc0 | (c >> 6)) + pct(0x80 | (c & 63));
      } else {
        if (c >= 0xd800 && c <= 0xdfff) {
          const d = i + 1 < n ? s.charCodeAt(i + 1) : 0;
          if (c <= 0xdbff && (d & 0xfc00) === 0xdc00) {
            c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            i++;
            out += pct(0xf0 | (c >> 18)) + pct(0x80 | ((c >> 12) & 63)) + pct(0x80 | ((c >> 6) & 63)) + pct(0x80 | (c & 63));
            continue;
          }
          c = 0xfffd;
        }
        out += pct(0xe0 | (c >> 12)) + pct(0x80 | ((c >> 6) & 63)) + pct(0x80 | (c & 63));
      }
    }
    return out;
  }
  function hexValue(c) {
    if (c >= 0x30 && c <= 0x39) return c - 0x30;
    c |= 0x20;
    if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
    return -1;
  }
  // decode percent-decodes s's UTF-8 bytes and decodes them as UTF-8
  // (without BOM); an invalid escape stays as it is.
  function decode(s) {
    if (s.indexOf("%") < 0) return s;
    const bytes = utf8Encode(s);
    const n = bytes.length;
    let j = 0;
    for (let i = 0; i < n; i++) {
      const b = bytes[i];
      if (b === 0x25 && i + 2 < n) {
        const h = hexValue(bytes[i + 1]), l = hexValue(bytes[i + 2]);
        if (h >= 0 && l >= 0) {
          bytes[j++] = (h << 4) | l;
          i += 2;
          continue;
        }
      }
      bytes[j++] = b;
    }
    return utf8Decode(bytes.subarray(0, j), new DecoderState(), true, false);
  }

  // ---- application/x-www-form-urlencoded -------------------------------

  // The list of a URLSearchParams is flat: name, value, name, value...
  function formParse(s) {
    const list = [];
    const n = s.length;
    const plain = s.indexOf("%") < 0 && s.indexOf("+") < 0; // nothing to decode
    for (let start = 0; start < n;) {
      let amp = s.indexOf("&", start);
      if (amp < 0) amp = n;
      if (amp > start) {
        const eq = s.indexOf("=", start);
        if (plain) {
          if (eq >= 0 && eq < amp) list.push(s.slice(start, eq), s.slice(eq + 1, amp));
          else list.push(s.slice(start, amp), "");
        } else if (eq >= 0 && eq < amp) {
          list.push(formDecode(s.slice(start, eq)), formDecode(s.slice(eq + 1, amp)));
        } else {
          list.push(formDecode(s.slice(start, amp)), "");
        }
      }
      start = amp + 1;
    }
    return list;
  }
  function formDecode(s) {
    if (s.indexOf("+") >= 0) s = s.replaceAll("+", " ");
    return decode(s);
  }
  // formEncode encodes a (well-formed) name or value: encodeURIComponent
  // leaves !'()~ as they are, which the form's set encodes, and encodes a
  // space as %20, the form's "+".
  const formExtra = /[!'()~]|%20/;
  const formExtras = /[!'()~]|%20/g;
  function formExtraEncoded(c) {
    return c === "%20" ? "+" : pct(c.charCodeAt(0));
  }
  function formEncode(s) {
    const e = encodeURIComponent(s);
    return formExtra.test(e) ? e.replace(formExtras, formExtraEncoded) : e;
  }
  // A short list's names and values are encoded one by one, and those
  // seen are kept: they repeat ("source=segment"), and a lookup costs a
  // fraction of a regular expression's test.
  const formEncoded = new Map();
  function formEncodeKept(s) {
    let e = formEncoded.get(s);
    if (e === undefined) {
      e = needsEncoding[FORM_SET].test(s) ? formEncode(s) : s;
      if (s.length <= 64) {
        if (formEncoded.size >= 256) formEncoded.clear();
        formEncoded.set(s, e);
      }
    }
    return e;
  }
  function formSerialize(list) {
    let out = "";
    if (list.length <= 4) {
      for (let i = 0; i < list.length; i += 2) out += (i > 0 ? "&" : "") + formEncodeKept(list[i]) + "=" + formEncodeKept(list[i + 1]);
      return out;
    }
    if (!needsEncoding[FORM_SET].test(list.join(""))) {
      // Nothing to encode, as is most often the case: one test for all.
      for (let i = 0; i < list.length; i += 2) out += (i > 0 ? "&" : "") + list[i] + "=" + list[i + 1];
      return out;
    }
    for (let i = 0; i < list.length; i += 2) out += (i > 0 ? "&" : "") + formEncode(list[i]) + "=" + formEncode(list[i + 1]);
    return out;
  }

  // ---- base64 ---------------------------------------------------------

  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const b64Codes = new Uint8Array(64);
  const b64Values = new Int8Array(128).fill(-1);
  for (let i = 0; i < 64; i++) {
    b64Codes[i] = B64.charCodeAt(i);
    b64Values[B64.charCodeAt(i)] = i;
  }
  // base64 encodes bytes (a typed array, or a string of code units up to
  // 0xFF), with padding.
  function base64(bytes, n, at) {
    if (n <= 96) {
      // Short (credentials): concatenated at once.
      let out = "", i = 0;
      for (; i + 2 < n; i += 3) {
        const v = (at(bytes, i) << 16) | (at(bytes, i + 1) << 8) | at(bytes, i + 2);
        out += B64[v >> 18] + B64[(v >> 12) & 63] + B64[(v >> 6) & 63] + B64[v & 63];
      }
      if (i + 1 === n) out += B64[at(bytes, i) >> 2] + B64[(at(bytes, i) & 3) << 4] + "==";
      else if (i + 2 === n) {
        const v = (at(bytes, i) << 8) | at(bytes, i + 1);
        out += B64[v >> 10] + B64[(v >> 4) & 63] + B64[(v & 15) << 2] + "=";
      }
      return out;
    }
    const out = new Uint8Array(Math.ceil(n / 3) * 4);
    let j = 0, i = 0;
    for (; i + 2 < n; i += 3) {
      const v = (at(bytes, i) << 16) | (at(bytes, i + 1) << 8) | at(bytes, i + 2);
      out[j++] = b64Codes[v >> 18];
      out[j++] = b64Codes[(v >> 12) & 63];
      out[j++] = b64Codes[(v >> 6) & 63];
      out[j++] = b64Codes[v & 63];
    }
    if (i < n) {
      const v = (at(bytes, i) << 16) | (i + 1 < n ? at(bytes, i + 1) << 8 : 0);
      out[j++] = b64Codes[v >> 18];
      out[j++] = b64Codes[(v >> 12) & 63];
      out[j++] = i + 1 < n ? b64Codes[(v >> 6) & 63] : 61;
      out[j++] = 61;
    }
    return codesToString(out, j);
  }
  function byteAt(b, i) { return b[i]; }
  function codeAt(s, i) { return s.charCodeAt(i); }
  // QuickJS-ng has DOMException; a minimal one stands in otherwise.
  const DOMException = typeof g.DOMException === "function" ? g.DOMException : (function () {
    const codes = { InvalidCharacterError: 5, NotSupportedError: 9, InvalidStateError: 11, SyntaxError: 12,
      NetworkError: 19, AbortError: 20, TimeoutError: 23 };
    const D = class DOMException extends Error {
      constructor(message = "", name = "Error") {
        super(str(message));
        Object.defineProperty(this, "name", { value: str(name), writable: true, configurable: true });
      }
      get code() {
        return codes[this.name] || 0;
      }
    };
    define("DOMException", D);
    return D;
  })();
  function invalidCharacter(msg) {
    return new DOMException(msg, "InvalidCharacterError");
  }
  // The last string btoa encoded and its base64: a function's credentials
  // are the same from event to event.
  let btoaLast = "", btoaLastOut = "";
  function btoa(data) {
    needArgs(1, arguments.length, "btoa");
    const s = str(data);
    if (s === btoaLast) return btoaLastOut;
    if (pastLatin1.test(s)) {
      throw invalidCharacter("btoa: the string has a character past U+00FF (at " + s.search(pastLatin1) + "): encode it as UTF-8 first");
    }
    const out = base64(s, s.length, codeAt);
    if (s.length <= 256) {
      btoaLast = s;
      btoaLastOut = out;
    }
    return out;
  }
  // forgivingBase64 is the forgiving-base64 decode of the infra standard:
  // the bytes, or null for an invalid input.
  const asciiSpace = /[\t\n\f\r ]/;
  const asciiSpaces = /[\t\n\f\r ]+/g;
  const base64Chars = /^[A-Za-z0-9+\/]*$/;
  function forgivingBase64(s) {
    if (asciiSpace.test(s)) s = s.replace(asciiSpaces, "");
    let n = s.length;
    if (n % 4 === 0 && n > 0 && s.charCodeAt(n - 1) === 0x3d) {
      n--;
      if (s.charCodeAt(n - 1) === 0x3d) n--;
      s = s.slice(0, n);
    }
    if (n % 4 === 1 || !base64Chars.test(s)) return null;
    const out = new Uint8Array((n * 3) >> 2);
    let j = 0, i = 0;
    for (; i + 3 < n; i += 4) {
      const v = (b64Values[s.charCodeAt(i)] << 18) | (b64Values[s.charCodeAt(i + 1)] << 12) |
        (b64Values[s.charCodeAt(i + 2)] << 6) | b64Values[s.charCodeAt(i + 3)];
      out[j++] = v >> 16;
      out[j++] = (v >> 8) & 0xff;
      out[j++] = v & 0xff;
    }
    // The last 2 or 3 characters: 1 or 2 bytes, the extra bits dropped.
    if (i + 1 < n) {
      const v = (b64Values[s.charCodeAt(i)] << 18) | (b64Values[s.charCodeAt(i + 1)] << 12) |
        (i + 2 < n ? b64Values[s.charCodeAt(i + 2)] << 6 : 0);
      out[j++] = v >> 16;
      if (i + 2 < n) out[j++] = (v >> 8) & 0xff;
    }
    return out.subarray(0, j);
  }
  function atob(data) {
    needArgs(1, arguments.length, "atob");
    const b = forgivingBase64(str(data));
    if (b === null) throw invalidCharacter("atob: the string is not valid base64");
    return codesToString(b, b.length);
  }

  // ---- URL parsing (the URL standard's basic URL parser) --------------

  // A URL record. path is an array of segments, or a string: an opaque
  // path (mailto:x). host is serialized (an IPv6 address in brackets), ""
  // an empty host, null none; port a number or null.
  function Rec() {
    this.scheme = "";
    this.username = "";
    this.password = "";
    this.host = null;
    this.port = null;
    this.path = [];
    this.query = null;
    this.fragment = null;
  }
  function isSpecial(scheme) {
    switch (scheme) {
      case "http": case "https": case "ws": case "wss": case "ftp": case "file": return true;
    }
    return false;
  }
  function defaultPort(scheme) {
    switch (scheme) {
      case "http": case "ws": return 80;
      case "https": case "wss": return 443;
      case "ftp": return 21;
    }
    return null;
  }
  function hasCredentials(u) {
    return u.username !== "" || u.password !== "";
  }
  function cannotHaveCredentialsOrPort(u) {
    return u.host === null || u.host === "" || u.scheme === "file";
  }
  function isAlpha(c) {
    return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  }
  function isDigit(c) {
    return c >= 0x30 && c <= 0x39;
  }
  // A Windows drive letter: "c:" or "c|"; normalized: "c:".
  function isDriveLetter(s, normalized) {
    return s.length === 2 && isAlpha(s.charCodeAt(0)) && (s[1] === ":" || (!normalized && s[1] === "|"));
  }
  function startsWithDriveLetter(s, p) {
    if (s.length - p < 2 || !isAlpha(s.charCodeAt(p))) return false;
    const c = s.charCodeAt(p + 1);
    if (c !== 0x3a && c !== 0x7c) return false;
    if (s.length - p === 2) return true;
    const d = s.charCodeAt(p + 2);
    return d === 0x2f || d === 0x5c || d === 0x3f || d === 0x23;
  }
  function isSingleDot(s) {
    return s === "." || (s.length === 3 && s[0] === "%" && s[1] === "2" && (s[2] === "e" || s[2] === "E"));
  }
  function isDoubleDot(s) {
    switch (s.length) {
      case 2: return s === "..";
      case 4: return s[0] === "." ? isSingleDot(s.slice(1)) : s[3] === "." && isSingleDot(s.slice(0, 3));
      case 6: return isSingleDot(s.slice(0, 3)) && isSingleDot(s.slice(3));
    }
    return false;
  }
  function shorten(u) {
    const path = u.path;
    if (u.scheme === "file" && path.length === 1 && isDriveLetter(path[0], true)) return;
    path.pop();
  }

  // The parser's states; a setter starts at one of them (override).
  const SCHEME_START = 1, SCHEME = 2, NO_SCHEME = 3, SPECIAL_RELATIVE_OR_AUTHORITY = 4, PATH_OR_AUTHORITY = 5,
    RELATIVE = 6, RELATIVE_SLASH = 7, SPECIAL_AUTHORITY_SLASHES = 8, SPECIAL_AUTHORITY_IGNORE_SLASHES = 9,
    AUTHORITY = 10, HOST = 11, HOSTNAME = 12, PORT = 13, FILE = 14, FILE_SLASH = 15, FILE_HOST = 16,
    PATH_START = 17, PATH = 18, OPAQUE_PATH = 19, QUERY = 20, FRAGMENT = 21;
  const EOF = -1;

  // parse is the basic URL parser: input a USVString, base a record or
  // null. Without url it returns a new record, or null when input is not
  // a URL. With url and override (a setter) it changes url in place and
  // returns null where the standard returns failure.
  function parse(input, base, url, override) {
    if (url === undefined) {
      const fast = base === null || input.charCodeAt(0) !== 0x2f ? parseAbsolute(input) : parseRelative(input, base);
      if (fast !== null) return fast;
      url = new Rec();
      override = 0;
      // Leading and trailing C0 controls and spaces go.
      let a = 0, b = input.length;
      while (a < b && input.charCodeAt(a) <= 0x20) a++;
      while (b > a && input.charCodeAt(b - 1) <= 0x20) b--;
      if (a !== 0 || b !== input.length) input = input.slice(a, b);
    }
    if (input.indexOf("\t") >= 0 || input.indexOf("\n") >= 0 || input.indexOf("\r") >= 0) {
      let t = "";
      for (let i = 0; i < input.length; i++) {
        const c = input.charCodeAt(i);
        if (c !== 0x09 && c !== 0x0a && c !== 0x0d) t += input[i];
      }
      input = t;
    }
    const len = input.length;
    let state = override || SCHEME_START;
    let buffer = "";
    let atSignSeen = false, insideBrackets = false, passwordTokenSeen = false;
    for (let p = 0; ; p++) {
      const c = p < len ? input.charCodeAt(p) : EOF;
      switch (state) {
        case SCHEME_START:
          if (isAlpha(c)) {
            buffer += fromCharCode(c | 0x20);
            state = SCHEME;
          } else if (!override) {
            state = NO_SCHEME;
            p--;
          } else {
            return null;
          }
          break;
        case SCHEME:
          if (isAlpha(c) || isDigit(c) || c === 0x2b || c === 0x2d || c === 0x2e) {
            buffer += fromCharCode(isAlpha(c) ? c | 0x20 : c);
          } else if (c === 0x3a) {
            if (override) {
              if (isSpecial(url.scheme) !== isSpecial(buffer)) return url;
              if ((hasCredentials(url) || url.port !== null) && buffer === "file") return url;
              if (url.scheme === "file" && url.host === "") return url;
            }
            url.scheme = buffer;
            if (override) {
              if (url.port === defaultPort(url.scheme)) url.port = null;
              return url;
            }
            buffer = "";
            if (url.scheme === "file") {
              state = FILE;
            } else if (isSpecial(url.scheme)) {
              state = base !== null && base.scheme === url.scheme ? SPECIAL_RELATIVE_OR_AUTHORITY : SPECIAL_AUTHORITY_SLASHES;
            } else if (input.charCodeAt(p + 1) === 0x2f) {
              state = PATH_OR_AUTHORITY;
              p++;
            } else {
              url.path = "";
              state = OPAQUE_PATH;
            }
          } else if (!override) {
            buffer = "";
            state = NO_SCHEME;
            p = -1;
          } else {
            return null;
          }
          break;
        case NO_SCHEME:
          if (base === null || (typeof base.path === "string" && c !== 0x23)) return null;
          if (typeof base.path === "string") {
            url.scheme = base.scheme;
            url.path = base.path;
            url.query = base.query;
            url.fragment = "";
            state = FRAGMENT;
          } else {
            state = base.scheme !== "file" ? RELATIVE : FILE;
            p--;
          }
          break;
        case SPECIAL_RELATIVE_OR_AUTHORITY:
          if (c === 0x2f && input.charCodeAt(p + 1) === 0x2f) {
            state = SPECIAL_AUTHORITY_IGNORE_SLASHES;
            p++;
          } else {
            state = RELATIVE;
            p--;
          }
          break;
        case PATH_OR_AUTHORITY:
          if (c === 0x2f) {
            state = AUTHORITY;
          } else {
            state = PATH;
            p--;
          }
          break;
        case RELATIVE:
          url.scheme = base.scheme;
          if (c === 0x2f || (c === 0x5c && isSpecial(url.scheme))) {
            state = RELATIVE_SLASH;
          } else {
            url.username = base.username;
            url.password = base.password;
            url.host = base.host;
            url.port = base.port;
            url.path = base.path.slice();
            url.query = base.query;
            if (c === 0x3f) {
              url.query = "";
              state = QUERY;
            } else if (c === 0x23) {
              url.fragment = "";
              state = FRAGMENT;
            } else if (c !== EOF) {
              url.query = null;
              shorten(url);
              state = PATH;
              p--;
            }
          }
          break;
        case RELATIVE_SLASH:
          if (isSpecial(url.scheme) && (c === 0x2f || c === 0x5c)) {
            state = SPECIAL_AUTHORITY_IGNORE_SLASHES;
          } else if (c === 0x2f) {
            state = AUTHORITY;
          } else {
            url.username = base.username;
            url.password = base.password;
            url.host = base.host;
            url.port = base.port;
            state = PATH;
            p--;
          }
          break;
        case SPECIAL_AUTHORITY_SLASHES:
          state = SPECIAL_AUTHORITY_IGNORE_SLASHES;
          if (c === 0x2f && input.charCodeAt(p + 1) === 0x2f) p++;
          else p--;
          break;
        case SPECIAL_AUTHORITY_IGNORE_SLASHES:
          if (c !== 0x2f && c !== 0x5c) {
            state = AUTHORITY;
            p--;
          }
          break;
        case AUTHORITY:
          if (c === 0x40) {
            if (atSignSeen) buffer = "%40" + buffer;
            atSignSeen = true;
            const colon = passwordTokenSeen ? -1 : buffer.indexOf(":");
            if (passwordTokenSeen) {
              url.password += encode(buffer, USERINFO_SET);
            } else if (colon >= 0) {
              passwordTokenSeen = true;
              url.username += encode(buffer.slice(0, colon), USERINFO_SET);
              url.password += encode(buffer.slice(colon + 1), USERINFO_SET);
            } else {
              url.username += encode(buffer, USERINFO_SET);
            }
            buffer = "";
          } else if (c === EOF || c === 0x2f || c === 0x3f || c === 0x23 || (c === 0x5c && isSpecial(url.scheme))) {
            if (atSignSeen && buffer === "") return null;
            p -= buffer.length + 1;
            buffer = "";
            state = HOST;
          } else {
            buffer += input[p];
          }
          break;
        case HOST:
        case HOSTNAME:
          if (override && url.scheme === "file") {
            p--;
            state = FILE_HOST;
          } else if (c === 0x3a && !insideBrackets) {
            if (buffer === "" || override === HOSTNAME) return null;
            const host = parseHost(buffer, !isSpecial(url.scheme));
            if (host === null) return null;
            url.host = host;
            buffer = "";
            state = PORT;
          } else if (c === EOF || c === 0x2f || c === 0x3f || c === 0x23 || (c === 0x5c && isSpecial(url.scheme))) {
            p--;
            if (buffer === "" && (isSpecial(url.scheme) || (override && (hasCredentials(url) || url.port !== null)))) return null;
            const host = parseHost(buffer, !isSpecial(url.scheme));
            if (host === null) return null;
            url.host = host;
            buffer = "";
            state = PATH_START;
            if (override) return url;
          } else {
            if (c === 0x5b) insideBrackets = true;
            else if (c === 0x5d) insideBrackets = false;
            buffer += input[p];
          }
          break;
        case PORT:
          if (isDigit(c)) {
            buffer += input[p];
          } else if (c === EOF || c === 0x2f || c === 0x3f || c === 0x23 || (c === 0x5c && isSpecial(url.scheme)) || override) {
            if (buffer !== "") {
              const port = parseInt(buffer, 10);
              if (port > 65535) return null;
              url.port = port === defaultPort(url.scheme) ? null : port;
              buffer = "";
              if (override) return url;
            }
            if (override) return null;
            state = PATH_START;
            p--;
          } else {
            return null;
          }
          break;
        case FILE:
          url.scheme = "file";
          url.host = "";
          if (c === 0x2f || c === 0x5c) {
            state = FILE_SLASH;
          } else if (base !== null && base.scheme === "file") {
            url.host = base.host;
            url.path = base.path.slice();
            url.query = base.query;
            if (c === 0x3f) {
              url.query = "";
              state = QUERY;
            } else if (c === 0x23) {
              url.fragment = "";
              state = FRAGMENT;
            } else if (c !== EOF) {
              url.query = null;
              if (!startsWithDriveLetter(input, p)) shorten(url);
              else url.path = [];
              state = PATH;
              p--;
            }
          } else {
            state = PATH;
            p--;
          }
          break;
        case FILE_SLASH:
          if (c === 0x2f || c === 0x5c) {
            state = FILE_HOST;
          } else {
            if (base !== null && base.scheme === "file") {
              url.host = base.host;
              if (!startsWithDriveLetter(input, p) && base.path.length > 0 && isDriveLetter(base.path[0], true)) {
                url.path.push(base.path[0]);
              }
            }
            state = PATH;
            p--;
          }
          break;
        case FILE_HOST:
          if (c === EOF || c === 0x2f || c === 0x5c || c === 0x3f || c === 0x23) {
            p--;
            if (!override && isDriveLetter(buffer, false)) {
              state = PATH; // the buffer is the path's first segment
            } else if (buffer === "") {
              url.host = "";
              if (override) return url;
              state = PATH_START;
            } else {
              let host = parseHost(buffer, false);
              if (host === null) return null;
              if (host === "localhost") host = "";
              url.host = host;
              if (override) return url;
              buffer = "";
              state = PATH_START;
            }
          } else {
            buffer += input[p];
          }
          break;
        case PATH_START:
          if (isSpecial(url.scheme)) {
            state = PATH;
            if (c !== 0x2f && c !== 0x5c) p--;
          } else if (!override && c === 0x3f) {
            url.query = "";
            state = QUERY;
          } else if (!override && c === 0x23) {
            url.fragment = "";
            state = FRAGMENT;
          } else if (c !== EOF) {
            state = PATH;
            if (c !== 0x2f) p--;
          } else if (override && url.host === null) {
            url.path.push("");
          }
          break;
        case PATH: {
          const special = isSpecial(url.scheme);
          if (c === EOF || c === 0x2f || (special && c === 0x5c) || (!override && (c === 0x3f || c === 0x23))) {
            const slash = c === 0x2f || (special && c === 0x5c);
            // The segment is encoded as a whole: the dots' forms are the
            // same encoded or not.
            if (isDoubleDot(buffer)) {
              shorten(url);
              if (!slash) url.path.push("");
            } else if (isSingleDot(buffer)) {
              if (!slash) url.path.push("");
            } else {
              if (url.scheme === "file" && url.path.length === 0 && isDriveLetter(buffer, false)) buffer = buffer[0] + ":";
              url.path.push(encode(buffer, PATH_SET));
            }
            buffer = "";
            if (c === 0x3f) {
              url.query = "";
              state = QUERY;
            } else if (c === 0x23) {
              url.fragment = "";
              state = FRAGMENT;
            }
          } else {
            // The rest of the segment at once.
            let q = p + 1;
            for (; q < len; q++) {
              const d = input.charCodeAt(q);
              if (d === 0x2f || (special && d === 0x5c) || (!override && (d === 0x3f || d === 0x23))) break;
            }
            buffer += input.slice(p, q);
            p = q - 1;
          }
          break;
        }
        case OPAQUE_PATH:
          if (c === 0x3f) {
            url.query = "";
            state = QUERY;
          } else if (c === 0x23) {
            url.fragment = "";
            state = FRAGMENT;
          } else if (c !== EOF) {
            let q = p + 1;
            for (; q < len; q++) {
              const d = input.charCodeAt(q);
              if (d === 0x3f || d === 0x23) break;
            }
            url.path += encode(input.slice(p, q), C0);
            p = q - 1;
          }
          break;
        case QUERY: {
          // The query up to "#" (all of it for a setter) at once.
          let q = override ? -1 : input.indexOf("#", p);
          if (q < 0) q = len;
          if (q > p) url.query += encode(input.slice(p, q), isSpecial(url.scheme) ? SPECIAL_QUERY_SET : QUERY_SET);
          p = q;
          if (q < len) {
            url.fragment = "";
            state = FRAGMENT;
          }
          break;
        }
        case FRAGMENT:
          if (c !== EOF) {
            url.fragment += encode(input.slice(p), FRAGMENT_SET);
            p = len;
          }
          break;
      }
      if (p >= len) break;
    }
    return url;
  }

  // The common URLs, parsed at once, as the parser would (a state machine
  // over the characters costs about 0.4 us a character in the engine): an
  // absolute URL of a special scheme other than file, whose host is ASCII
  // and no IPv4 address, without credentials, and whose path, query and
  // fragment need no percent-encoding and have no dot segments; or a
  // path (/v1/x?q) against such a URL. Anything else is the parser's.
  const absoluteURL = /^([A-Za-z]+):\/\/([A-Za-z0-9\-._~!$&'()*+,;=]+)(?::([0-9]{1,5}))?((?:\/[^\x00-\x20"#<>?^`{}\\\x7f-\uffff]*)?)(?:\?([^\x00-\x20"#'<>\x7f-\uffff]*))?(?:#([^\x00-\x20"<>`\x7f-\uffff]*))?$/;
  const pathURL = /^(\/(?:[^\x00-\x20"#<>?^`{}\\\/\x7f-\uffff][^\x00-\x20"#<>?^`{}\\\x7f-\uffff]*)?)(?:\?([^\x00-\x20"#'<>\x7f-\uffff]*))?(?:#([^\x00-\x20"<>`\x7f-\uffff]*))?$/;
  const dotSegment = /(?:^|\/)(?:\.|%2[eE]){1,2}(?:\/|$)/;
  // An IPv4 address as the host parser writes it: four decimal numbers.
  const ipv4Dotted = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;
  function parseAbsolute(input) {
    const m = absoluteURL.exec(input);
    if (m === null) return null;
    const scheme = m[1].toLowerCase();
    const port = defaultPort(scheme);
    if (port === null) return null;
    const host = m[2].toLowerCase();
    if (host.indexOf("xn--") >= 0 || (endsInNumber(host) && !ipv4Dotted.test(host)) || (m[4] !== "" && dotSegment.test(m[4]))) return null;
    const u = new Rec();
    u.scheme = scheme;
    u.host = host;
    if (m[3] !== undefined) {
      const p = +m[3];
      if (p > 65535) return null;
      if (p !== port) u.port = p;
    }
    u.path = m[4] === "" ? [""] : m[4].slice(1).split("/");
    if (m[5] !== undefined) u.query = m[5];
    if (m[6] !== undefined) u.fragment = m[6];
    return u;
  }
  function parseRelative(input, base) {
    if (base.host === null || base.scheme === "file" || !isSpecial(base.scheme)) return null;
    const m = pathURL.exec(input);
    if (m === null || dotSegment.test(m[1])) return null;
    const u = new Rec();
    u.scheme = base.scheme;
    u.username = base.username;
    u.password = base.password;
    u.host = base.host;
    u.port = base.port;
    u.path = m[1].slice(1).split("/");
    if (m[2] !== undefined) u.query = m[2];
    if (m[3] !== undefined) u.fragment = m[3];
    return u;
  }

  // The fastest path is for a URL that is already as the parser would write
  // it (the serializer's output, or a plain URL in a function's settings):
  // its serialization is the text itself, and the URL object keeps that
  // text alone (no record) until something other than its href, search or
  // searchParams is read. fastHref checks an absolute URL of a special
  // scheme other than file in a few native calls: its scheme and authority
  // ("https://h:8443", the origin) against a cache of those seen, whose
  // first sight asks the parser; the rest for characters the parser would
  // encode or read as a slash, and for dot segments. It returns the URL's
  // serialization, or null (the parser's case), and sets fastCreds when the
  // authority has credentials.
  const origins = new Map(); // origin text -> 0: not canonical, 1: canonical, 2: canonical, with credentials
  function originKind(prefix) {
    if (prefix.length > 256) return 0; // not kept: the parser's
    let k = origins.get(prefix);
    if (k === undefined) {
      const u = parse(prefix + "/", null);
      k = u === null || u.scheme === "file" || !isSpecial(u.scheme) || serialize(u, false) !== prefix + "/" ? 0 : hasCredentials(u) ? 2 : 1;
      if (origins.size >= 256) origins.clear();
      origins.set(prefix, k);
    }
    return k;
  }
  // Anything the parser would change in a path, query or fragment (or
  // read as a slash); "'" (encoded in a special URL's query) and ^`{} (in a
  // path) count wherever they are.
  const unsafeRest = /[\x00-\x20"'<>\\^`{}\x7f-\uffff]/;
  // isSafe says whether s has none of unsafeRest's characters. A regular
  // expression's test costs about 2 us and 50 ns a character, encodeURI
  // (native code, which leaves all but "'" of those and a few more
  // encoded) a third of that: it answers most.
  function isSafe(s) {
    return encodeURI(s) === s ? s.indexOf("'") < 0 : !unsafeRest.test(s);
  }
  const dotSegmentI = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)/i;
  // hasDotSegment says whether the path that starts at s[p] has a "." or
  // ".." segment, raw or percent-encoded.
  function hasDotSegment(s, p) {
    if (s.indexOf("/.", p) < 0 && s.indexOf("/%2", p) < 0) return false;
    let end = s.indexOf("?", p);
    const f = s.indexOf("#", p);
    if (end < 0 || (f >= 0 && f < end)) end = f;
    return dotSegmentI.test(end < 0 ? s.slice(p) : s.slice(p, end));
  }
  // lastHref is the last URL a fast path found canonical, without
  // credentials: fetch(url.href) finds it at once.
  let fastCreds = false, lastHref = "";
  function fastHref(s) {
    if (s === lastHref) {
      fastCreds = false;
      return s;
    }
    const c = s.indexOf("://");
    if (c <= 0) return null;
    const p = s.indexOf("/", c + 3);
    const k = originKind(p < 0 ? s : s.slice(0, p));
    if (k === 0) return null;
    fastCreds = k === 2;
    if (p < 0) return s + "/";
    if (!isSafe(s) || hasDotSegment(s, p)) return null;
    if (k === 1) lastHref = s;
    return s;
  }
  // A base URL's parts for fastRelative, by its text: its record (which the
  // parser reads, never changes), and for a special URL other than file its
  // origin (prefix) and its path up to its last slash (dir); both null
  // otherwise.
  const bases = new Map();
  function baseOf(s) {
    let b = bases.get(s);
    if (b === undefined) {
      const u = parse(s, null);
      if (u === null) return null;
      b = { rec: u, prefix: null, dir: null, creds: hasCredentials(u) };
      if (u.host !== null && u.scheme !== "file" && isSpecial(u.scheme)) {
        const ps = pathString(u);
        b.prefix = authorityPrefix(u);
        b.dir = ps.slice(0, ps.lastIndexOf("/") + 1);
      }
      if (s.length <= 2048) {
        if (bases.size >= 64) bases.clear();
        bases.set(s, b);
      }
    }
    return b;
  }
  // fastRelative resolves s, a path without a scheme ("x/y?q" or "/x/y";
  // the caller has found no ":" in it), against b as fastHref does, or
  // returns null.
  function fastRelative(s, b) {
    if (b.prefix === null || s === "") return null;
    const c = s.charCodeAt(0);
    let h;
    if (c === 0x2f) {
      if (s.charCodeAt(1) === 0x2f) return null; // an authority
      h = b.prefix + s;
    } else {
      if (c === 0x3f || c === 0x23) return null; // a query or fragment alone
      h = b.prefix + b.dir + s;
    }
    if (!isSafe(s) || hasDotSegment(h, b.prefix.length)) return null;
    fastCreds = b.creds;
    if (!b.creds) lastHref = h;
    return h;
  }

  // ---- Hosts ----------------------------------------------------------

  const FORBIDDEN_HOST = 1, FORBIDDEN_DOMAIN = 2;
  const hostChars = new Uint8Array(128);
  (function () {
    for (let c = 0; c < 0x20; c++) hostChars[c] = FORBIDDEN_DOMAIN;
    hostChars[0x7f] = FORBIDDEN_DOMAIN;
    hostChars[0x25] = FORBIDDEN_DOMAIN;
    const forbidden = "\u0000\t\n\r #/:<>?@[\\]^|";
    for (let i = 0; i < forbidden.length; i++) hostChars[forbidden.charCodeAt(i)] = FORBIDDEN_HOST | FORBIDDEN_DOMAIN;
  })();
  // parseHost is the host parser: the serialized host, or null.
  function parseHost(input, opaque) {
    if (input.charCodeAt(0) === 0x5b) {
      if (input.charCodeAt(input.length - 1) !== 0x5d) return null;
      const a = parseIPv6(input.slice(1, -1));
      return a === null ? null : "[" + serializeIPv6(a) + "]";
    }
    if (opaque) {
      for (let i = 0; i < input.length; i++) {
        const c = input.charCodeAt(i);
        if (c < 128 && (hostChars[c] & FORBIDDEN_HOST) !== 0) return null;
      }
      return encode(input, C0);
    }
    const ascii = domainToASCII(decode(input));
    if (ascii === null) return null;
    if (endsInNumber(ascii)) {
      const v4 = parseIPv4(ascii);
      return v4 === null ? null : (v4 >>> 24) + "." + ((v4 >>> 16) & 255) + "." + ((v4 >>> 8) & 255) + "." + (v4 & 255);
    }
    return ascii;
  }
  // domainToASCII lowercases an ASCII domain; a domain with other code
  // points is NFKC-normalized and lowercased (near UTS #46's mapping), and
  // its labels Punycode-encoded. null: not a domain.
  const forbiddenDomain = /[\x00-\x20#%\/:<>?@[\\\]^|\x7f-\uffff]/;
  function domainToASCII(domain) {
    let result;
    if (!nonASCII.test(domain)) {
      result = domain.toLowerCase();
      if (result.indexOf("xn--") >= 0 && !checkPunycodeLabels(result)) return null;
    } else {
      result = idnaToASCII(domain);
      if (result === null) return null;
    }
    return result === "" || forbiddenDomain.test(result) ? null : result;
  }
  function checkPunycodeLabels(domain) {
    const labels = domain.split(".");
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i];
      if (l.startsWith("xn--")) {
        // The label decoded must be Unicode, valid and as mapped.
        const u = punycodeDecode(l.slice(4));
        if (u === null || !nonASCII.test(u) || /[\0-\x20\x7f-\x9f]/.test(u) || idnaMap(u) !== u) return false;
      }
    }
    return true;
  }
  // Code points UTS #46 maps to nothing: soft hyphen, zero width space,
  // word joiner, variation selectors, BOM...
  const idnaIgnored = /[\u00ad\u034f\u180b-\u180f\u200b\u2060\ufe00-\ufe0f\ufeff]/g;
  function idnaMap(s) {
    return s.normalize("NFKC").toLowerCase().replace(idnaIgnored, "").normalize("NFC");
  }
  function idnaToASCII(domain) {
    const labels = idnaMap(domain).replace(/[\u3002\uff0e\uff61]/g, ".").split(".");
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i];
      if (!nonASCII.test(l)) {
        if (l.startsWith("xn--") && !checkPunycodeLabels(l)) return null;
        continue;
      }
      if (l.indexOf("\ufffd") >= 0) return null;
      const p = punycodeEncode(l);
      if (p === null) return null;
      labels[i] = "xn--" + p;
    }
    return labels.join(".");
  }
  // Punycode (RFC 3492).
  function punyAdapt(delta, numPoints, first) {
    delta = first ? Math.floor(delta / 700) : delta >> 1;
    delta += Math.floor(delta / numPoints);
    let k = 0;
    for (; delta > 455; k += 36) delta = Math.floor(delta / 35);
    return k + Math.floor((36 * delta) / (delta + 38));
  }
  function punyDigit(d) {
    return fromCharCode(d < 26 ? d + 97 : d + 22);
  }
  function punycodeEncode(label) {
    const cps = [];
    for (const ch of label) cps.push(ch.codePointAt(0));
    let out = "";
    for (let i = 0; i < cps.length; i++) if (cps[i] < 0x80) out += fromCharCode(cps[i]);
    const b = out.length;
    let h = b;
    if (b > 0) out += "-";
    let n = 128, delta = 0, bias = 72;
    while (h < cps.length) {
      let m = 0x7fffffff;
      for (let i = 0; i < cps.length; i++) if (cps[i] >= n && cps[i] < m) m = cps[i];
      delta += (m - n) * (h + 1);
      if (delta > 0x7fffffff) return null;
      n = m;
      for (let i = 0; i < cps.length; i++) {
        const c = cps[i];
        if (c < n) delta++;
        if (c !== n) continue;
        let q = delta;
        for (let k = 36; ; k += 36) {
          const t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
          if (q < t) break;
          out += punyDigit(t + ((q - t) % (36 - t)));
          q = Math.floor((q - t) / (36 - t));
        }
        out += punyDigit(q);
        bias = punyAdapt(delta, h + 1, h === b);
        delta = 0;
        h++;
      }
      delta++;
      n++;
    }
    return out;
  }
  function punycodeDecode(s) {
    const out = [];
    const d = s.lastIndexOf("-");
    for (let i = 0; i < d; i++) out.push(s.charCodeAt(i));
    let n = 128, i = 0, bias = 72;
    for (let pos = d > 0 ? d + 1 : 0; pos < s.length;) {
      const oldi = i;
      let w = 1;
      for (let k = 36; ; k += 36) {
        if (pos >= s.length) return null;
        const c = s.charCodeAt(pos++);
        const digit = isDigit(c) ? c - 22 : c >= 0x41 && c <= 0x5a ? c - 0x41 : c >= 0x61 && c <= 0x7a ? c - 0x61 : 36;
        if (digit >= 36) return null;
        i += digit * w;
        if (i > 0x7fffffff) return null;
        const t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
        if (digit < t) break;
        w *= 36 - t;
      }
      bias = punyAdapt(i - oldi, out.length + 1, oldi === 0);
      n += Math.floor(i / (out.length + 1));
      i %= out.length + 1;
      if (n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff)) return null;
      out.splice(i++, 0, n);
    }
    return String.fromCodePoint.apply(null, out);
  }
  // endsInNumber: the last label (a trailing dot aside) is a number, so
  // the host is an IPv4 address.
  function endsInNumber(s) {
    let end = s.length;
    if (s.charCodeAt(end - 1) === 0x2e) end--;
    // A number's last character is a hexadecimal digit or x.
    const last = s.charCodeAt(end - 1) | 0x20;
    if (!(isDigit(last) || (last >= 0x61 && last <= 0x66) || last === 0x78)) return false;
    const start = end === 0 ? 0 : s.lastIndexOf(".", end - 1) + 1;
    if (start >= end) return false;
    let digits = true;
    for (let i = start; i < end; i++) {
      if (!isDigit(s.charCodeAt(i))) { digits = false; break; }
    }
    return digits || parseIPv4Number(s.slice(start, end)) !== null;
  }
  function parseIPv4Number(s) {
    if (s === "") return null;
    let r = 10, i = 0;
    if (s.length >= 2 && s[0] === "0" && (s[1] === "x" || s[1] === "X")) {
      r = 16;
      i = 2;
    } else if (s.length >= 2 && s[0] === "0") {
      r = 8;
      i = 1;
    }
    let v = 0;
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i);
      const d = r === 16 ? hexValue(c) : isDigit(c) ? c - 0x30 : -1;
      if (d < 0 || d >= r) return null;
      v = v * r + d;
    }
    return v;
  }
  function parseIPv4(s) {
    const parts = s.split(".");
    if (parts[parts.length - 1] === "" && parts.length > 1) parts.pop();
    if (parts.length > 4) return null;
    const nums = [];
    for (let i = 0; i < parts.length; i++) {
      const v = parseIPv4Number(parts[i]);
      if (v === null) return null;
      nums.push(v);
    }
    for (let i = 0; i < nums.length - 1; i++) if (nums[i] > 255) return null;
    let ipv4 = nums[nums.length - 1];
    if (ipv4 >= Math.pow(256, 5 - nums.length)) return null;
    for (let i = 0; i < nums.length - 1; i++) ipv4 += nums[i] * Math.pow(256, 3 - i);
    return ipv4;
  }
  function parseIPv6(input) {
    const address = [0, 0, 0, 0, 0, 0, 0, 0];
    const len = input.length;
    let piece = 0, compress = -1, p = 0;
    const at = (i) => (i < len ? input.charCodeAt(i) : EOF);
    if (at(0) === 0x3a) {
      if (at(1) !== 0x3a) return null;
      p = 2;
      compress = ++piece;
    }
    while (at(p) !== EOF) {
      if (piece === 8) return null;
      if (at(p) === 0x3a) {
        if (compress !== -1) return null;
        p++;
        compress = ++piece;
        continue;
      }
      let value = 0, length = 0;
      while (length < 4 && hexValue(at(p)) >= 0) {
        value = value * 16 + hexValue(at(p));
        p++;
        length++;
      }
      if (at(p) === 0x2e) {
        if (length === 0) return null;
        p -= length;
        if (piece > 6) return null;
        let seen = 0;
        while (at(p) !== EOF) {
          let v4 = -1;
          if (seen > 0) {
            if (at(p) === 0x2e && seen < 4) p++;
            else return null;
          }
          if (!isDigit(at(p))) return null;
          while (isDigit(at(p))) {
            const d = at(p) - 0x30;
            if (v4 === -1) v4 = d;
            else if (v4 === 0) return null;
            else v4 = v4 * 10 + d;
            if (v4 > 255) return null;
            p++;
          }
          address[piece] = address[piece] * 0x100 + v4;
          seen++;
          if (seen === 2 || seen === 4) piece++;
        }
        if (seen !== 4) return null;
        break;
      } else if (at(p) === 0x3a) {
        p++;
        if (at(p) === EOF) return null;
      } else if (at(p) !== EOF) {
        return null;
      }
      address[piece++] = value;
    }
    if (compress !== -1) {
      let swaps = piece - compress;
      piece = 7;
      while (piece !== 0 && swaps > 0) {
        const t = address[piece];
        address[piece] = address[compress + swaps - 1];
        address[compress + swaps - 1] = t;
        piece--;
        swaps--;
      }
    } else if (piece !== 8) {
      return null;
    }
    return address;
  }
  function serializeIPv6(a) {
    let best = -1, bestLen = 1;
    for (let i = 0; i < 8;) {
      if (a[i] !== 0) { i++; continue; }
      let j = i;
      while (j < 8 && a[j] === 0) j++;
      if (j - i > bestLen) {
        best = i;
        bestLen = j - i;
      }
      i = j;
    }
    let out = "";
    for (let i = 0; i < 8; i++) {
      if (i === best) {
        out += i === 0 ? "::" : ":";
        i += bestLen - 1;
        continue;
      }
      out += a[i].toString(16);
      if (i !== 7) out += ":";
    }
    return out;
  }

  // ---- URL serializing ------------------------------------------------

  function pathString(u) {
    const path = u.path;
    if (typeof path === "string") return path;
    let out = "";
    for (let i = 0; i < path.length; i++) out += "/" + path[i];
    return out;
  }
  // authorityPrefix is a URL's scheme and authority, as serialized (its
  // host is not null).
  function authorityPrefix(u) {
    let out = u.scheme + "://";
    if (u.username !== "" || u.password !== "") {
      out += u.username;
      if (u.password !== "") out += ":" + u.password;
      out += "@";
    }
    out += u.host;
    if (u.port !== null) out += ":" + u.port;
    return out;
  }
  function serialize(u, excludeFragment) {
    let out;
    if (u.host !== null) {
      out = authorityPrefix(u);
    } else if (typeof u.path !== "string" && u.path.length > 1 && u.path[0] === "") {
      out = u.scheme + ":/.";
    } else {
      out = u.scheme + ":";
    }
    out += pathString(u);
    if (u.query !== null) out += "?" + u.query;
    if (!excludeFragment && u.fragment !== null) out += "#" + u.fragment;
    return out;
  }
  function originOf(u) {
    switch (u.scheme) {
      case "http": case "https": case "ws": case "wss": case "ftp":
        return u.scheme + "://" + u.host + (u.port !== null ? ":" + u.port : "");
      case "blob": {
        const inner = parse(pathString(u), null);
        if (inner !== null && (inner.scheme === "http" || inner.scheme === "https")) return originOf(inner);
      }
    }
    return "null";
  }
  function stripTrailingSpaces(u) {
    if (typeof u.path !== "string" || u.fragment !== null || u.query !== null) return;
    let end = u.path.length;
    while (end > 0 && u.path.charCodeAt(end - 1) === 0x20) end--;
    u.path = u.path.slice(0, end);
  }
  // parseURL parses s (a USVString) against base (undefined: none, a URL
  // or its text), as the URL constructor does: it sets parsedHref (a fast
  // path's serialization) or parsedRec (the parser's record) and returns
  // true, or returns false when either is not a URL.
  let parsedHref = null, parsedRec = null;
  function parseURL(s, base) {
    parsedHref = parsedRec = null;
    if (base === undefined) {
      parsedHref = fastHref(s);
      if (parsedHref === null) parsedRec = parse(s, null);
    } else {
      const b = baseOf(base instanceof URL ? hrefOf(base) : usv(base));
      if (b === null) return false;
      parsedHref = s.indexOf(":") >= 0 ? fastHref(s) : fastRelative(s, b);
      if (parsedHref === null) parsedRec = parse(s, b.rec);
    }
    return parsedHref !== null || parsedRec !== null;
  }

  // ---- URLSearchParams ------------------------------------------------

  // Friends of the classes below, set in their static blocks.
  let paramsList, paramsReset, newParams, urlSetQuery, hrefOf;

  class URLSearchParams {
    #list = [];
    #url = null; // the URL whose query this is
    constructor(init = "") {
      if (init === INTERNAL) return;
      if (typeof init === "object" && init !== null || typeof init === "function") {
        if (init instanceof URLSearchParams) {
          this.#list = init.#list.slice();
          return;
        }
        this.#list = pairsOf(init, "URLSearchParams", true);
        return;
      }
      const s = usv(init);
      this.#list = formParse(s.charCodeAt(0) === 0x3f ? s.slice(1) : s);
    }
    static {
      paramsList = (p) => p.#list;
      paramsReset = (p, query) => { p.#list = query === null ? [] : formParse(query); };
      newParams = (url, query) => {
        const p = new URLSearchParams(INTERNAL);
        p.#url = url;
        if (query !== null && query !== "") p.#list = formParse(query);
        return p;
      };
    }
    #update() {
      if (this.#url === null) return;
      const s = formSerialize(this.#list);
      urlSetQuery(this.#url, s === "" ? null : s);
    }
    get size() {
      return this.#list.length >> 1;
    }
    append(name, value) {
      needArgs(2, arguments.length, "URLSearchParams.append");
      this.#list.push(usv(name), usv(value));
      this.#update();
    }
    delete(name, value = undefined) {
      needArgs(1, arguments.length, "URLSearchParams.delete");
      name = usv(name);
      const any = value === undefined;
      if (!any) value = usv(value);
      const l = this.#list;
      let j = 0;
      for (let i = 0; i < l.length; i += 2) {
        if (l[i] === name && (any || l[i + 1] === value)) continue;
        l[j++] = l[i];
        l[j++] = l[i + 1];
      }
      l.length = j;
      this.#update();
    }
    get(name) {
      needArgs(1, arguments.length, "URLSearchParams.get");
      name = usv(name);
      const l = this.#list;
      for (let i = 0; i < l.length; i += 2) if (l[i] === name) return l[i + 1];
      return null;
    }
    getAll(name) {
      needArgs(1, arguments.length, "URLSearchParams.getAll");
      name = usv(name);
      const l = this.#list, out = [];
      for (let i = 0; i < l.length; i += 2) if (l[i] === name) out.push(l[i + 1]);
      return out;
    }
    has(name, value = undefined) {
      needArgs(1, arguments.length, "URLSearchParams.has");
      name = usv(name);
      const any = value === undefined;
      if (!any) value = usv(value);
      const l = this.#list;
      for (let i = 0; i < l.length; i += 2) if (l[i] === name && (any || l[i + 1] === value)) return true;
      return false;
    }
    set(name, value) {
      needArgs(2, arguments.length, "URLSearchParams.set");
      name = usv(name);
      value = usv(value);
      const l = this.#list;
      let found = false, j = 0;
      for (let i = 0; i < l.length; i += 2) {
        if (l[i] === name) {
          if (found) continue;
          found = true;
          l[j++] = name;
          l[j++] = value;
        } else {
          l[j++] = l[i];
          l[j++] = l[i + 1];
        }
      }
      l.length = j;
      if (!found) l.push(name, value);
      this.#update();
    }
    // sort is stable, by the names' UTF-16 code units.
    sort() {
      const l = this.#list, pairs = [];
      for (let i = 0; i < l.length; i += 2) pairs.push([l[i], l[i + 1], i]);
      pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[2] - b[2]));
      for (let i = 0; i < pairs.length; i++) {
        l[2 * i] = pairs[i][0];
        l[2 * i + 1] = pairs[i][1];
      }
      this.#update();
    }
    toString() {
      return formSerialize(this.#list);
    }
    forEach(callback, thisArg = undefined) {
      needArgs(1, arguments.length, "URLSearchParams.forEach");
      if (typeof callback !== "function") throw new TypeError("URLSearchParams.forEach: the callback is not a function");
      for (let i = 0; i < this.#list.length; i += 2) callback.call(thisArg, this.#list[i + 1], this.#list[i], this);
    }
    #self() {
      return this;
    }
    entries() {
      return new ParamsIterator(this.#self(), 0);
    }
    keys() {
      return new ParamsIterator(this.#self(), 1);
    }
    values() {
      return new ParamsIterator(this.#self(), 2);
    }
  }
  URLSearchParams.prototype[Symbol.iterator] = URLSearchParams.prototype.entries;
  Object.defineProperty(URLSearchParams.prototype, Symbol.iterator, { enumerable: false });
  tag(URLSearchParams, "URLSearchParams");

  // iteratorClass makes the class of an interface's live pair iterator
  // (WebIDL's): list(target) is the flat list at each step; kind 0 gives
  // [name, value], 1 the name, 2 the value.
  function iteratorClass(name, list) {
    const C = class {
      #target;
      #kind;
      #i = 0;
      constructor(target, kind) {
        this.#target = target;
        this.#kind = kind;
      }
      next() {
        const l = list(this.#target), i = this.#i;
        if (i >= l.length) return { value: undefined, done: true };
        this.#i = i + 2;
        const k = this.#kind;
        return { value: k === 0 ? [l[i], l[i + 1]] : k === 1 ? l[i] : l[i + 1], done: false };
      }
    };
    Object.setPrototypeOf(C.prototype, IteratorPrototype);
    Object.defineProperty(C.prototype, Symbol.toStringTag, { value: name + " Iterator", configurable: true });
    return C;
  }
  const ParamsIterator = iteratorClass("URLSearchParams", (p) => paramsList(p));

  // ---- URL ------------------------------------------------------------

  function invalidURL(input, base) {
    return new TypeError("Invalid URL: " + JSON.stringify(input) + (base === undefined ? "" : " against the base " + JSON.stringify(str(base))));
  }
  class URL {
    // The URL is its serialization alone (#href, #u null) while it is
    // what a fast path made and only its href, search or searchParams are
    // read or its query changed; otherwise its record (#u, #href null).
    #u = null;
    #href = null;
    #q = null; // the searchParams, made when first read
    constructor(url, base = undefined) {
      if (url === INTERNAL) {
        this.#u = base;
        return;
      }
      // new URL() and new URL(undefined) alike are invalid: no need of
      // arguments.length (touching arguments costs a microsecond).
      if (url === undefined && base === undefined) throw new TypeError("URL: the URL is undefined");
      const s = usv(url);
      if (!parseURL(s, base)) throw invalidURL(s, base);
      this.#href = parsedHref;
      this.#u = parsedRec;
    }
    static {
      urlSetQuery = (url, q) => {
        const h = url.#href;
        if (h !== null) {
          // The query is between the first "?" and the first "#", which
          // no other part of a serialized URL has.
          const f = h.indexOf("#");
          let qs = h.indexOf("?");
          if (qs < 0 || (f >= 0 && qs > f)) qs = f < 0 ? h.length : f;
          const n = h.slice(0, qs) + (q === null ? "" : "?" + q) + (f < 0 ? "" : h.slice(f));
          if (h === lastHref) lastHref = n; // the form's serialization is safe
          url.#href = n;
          return;
        }
        url.#u.query = q;
        if (q === null) stripTrailingSpaces(url.#u);
      };
      hrefOf = (url) => (url.#href !== null ? url.#href : serialize(url.#u, false));
    }
    // #rec returns the URL's record, made of its serialization if need be.
    #rec() {
      let u = this.#u;
      if (u === null) {
        u = this.#u = parse(this.#href, null);
        this.#href = null;
      }
      return u;
    }
    static canParse(url, base = undefined) {
      needArgs(1, arguments.length, "URL.canParse");
      return parseURL(usv(url), base);
    }
    static parse(url, base = undefined) {
      needArgs(1, arguments.length, "URL.parse");
      if (!parseURL(usv(url), base)) return null;
      const u = new URL(INTERNAL, parsedRec);
      u.#href = parsedHref;
      return u;
    }
    get href() {
      return this.#href !== null ? this.#href : serialize(this.#u, false);
    }
    set href(v) {
      const s = usv(v);
      if (!parseURL(s, undefined)) throw invalidURL(s);
      this.#href = parsedHref;
      this.#u = parsedRec;
      if (this.#q !== null) paramsReset(this.#q, this.#query());
    }
    // #query is the URL's query, null when none.
    #query() {
      const h = this.#href;
      if (h === null) return this.#u.query;
      const f = h.indexOf("#");
      const qs = h.indexOf("?");
      if (qs < 0 || (f >= 0 && qs > f)) return null;
      return f < 0 ? h.slice(qs + 1) : h.slice(qs + 1, f);
    }
    get origin() {
      return originOf(this.#rec());
    }
    get protocol() {
      return this.#rec().scheme + ":";
    }
    set protocol(v) {
      parse(usv(v) + ":", null, this.#rec(), SCHEME_START);
    }
    get username() {
      return this.#rec().username;
    }
    set username(v) {
      const u = this.#rec();
      if (!cannotHaveCredentialsOrPort(u)) u.username = encode(usv(v), USERINFO_SET);
    }
    get password() {
      return this.#rec().password;
    }
    set password(v) {
      const u = this.#rec();
      if (!cannotHaveCredentialsOrPort(u)) u.password = encode(usv(v), USERINFO_SET);
    }
    get host() {
      const u = this.#rec();
      if (u.host === null) return "";
      return u.port === null ? u.host : u.host + ":" + u.port;
    }
    set host(v) {
      const u = this.#rec();
      if (typeof u.path !== "string") parse(usv(v), null, u, HOST);
    }
    get hostname() {
      const h = this.#rec().host;
      return h === null ? "" : h;
    }
    set hostname(v) {
      const u = this.#rec();
      if (typeof u.path !== "string") parse(usv(v), null, u, HOSTNAME);
    }
    get port() {
      const p = this.#rec().port;
      return p === null ? "" : String(p);
    }
    set port(v) {
      const u = this.#rec();
      if (cannotHaveCredentialsOrPort(u)) return;
      const s = usv(v);
      if (s === "") u.port = null;
      else parse(s, null, u, PORT);
    }
    get pathname() {
      return pathString(this.#rec());
    }
    set pathname(v) {
      const u = this.#rec();
      if (typeof u.path === "string") return;
      u.path = [];
      parse(usv(v), null, u, PATH_START);
    }
    get search() {
      const q = this.#query();
      return q === null || q === "" ? "" : "?" + q;
    }
    set search(v) {
      const u = this.#rec();
      const s = usv(v);
      if (s === "") {
        u.query = null;
        if (this.#q !== null) paramsReset(this.#q, null);
        stripTrailingSpaces(u);
        return;
      }
      const input = s.charCodeAt(0) === 0x3f ? s.slice(1) : s;
      u.query = "";
      parse(input, null, u, QUERY);
      if (this.#q !== null) paramsReset(this.#q, input);
    }
    get searchParams() {
      if (this.#q === null) this.#q = newParams(this, this.#query());
      return this.#q;
    }
    get hash() {
      const f = this.#rec().fragment;
      return f === null || f === "" ? "" : "#" + f;
    }
    set hash(v) {
      const u = this.#rec();
      const s = usv(v);
      if (s === "") {
        u.fragment = null;
        stripTrailingSpaces(u);
        return;
      }
      u.fragment = "";
      parse(s.charCodeAt(0) === 0x23 ? s.slice(1) : s, null, u, FRAGMENT);
    }
    toString() {
      return this.#href !== null ? this.#href : serialize(this.#u, false);
    }
    toJSON() {
      return this.#href !== null ? this.#href : serialize(this.#u, false);
    }
  }
  tag(URL, "URL");

  // ---- Headers --------------------------------------------------------

  // headerName validates a name and lowercases it. Names repeat: the
  // ones seen are kept (a Map lookup costs a fraction of a check).
  const token = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const headerNames = new Map();
  function headerName(v) {
    const s = str(v);
    let n = headerNames.get(s);
    if (n !== undefined) return n;
    if (!token.test(s)) throw new TypeError("Headers: " + JSON.stringify(s) + " is not a valid header name");
    n = s.toLowerCase();
    if (headerNames.size < 1024) headerNames.set(s, n);
    return n;
  }
  function isHTTPSpace(c) {
    return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
  }
  const invalidValue = /[\0\n\r\u0100-\uffff]/;
  // headerValue trims a value of HTTP whitespace and validates it. Values
  // repeat too (a key, a content type): the short ones seen are kept.
  const headerValues = new Map();
  function headerValue(v, name) {
    const raw = str(v);
    const known = headerValues.get(raw);
    if (known !== undefined) return known;
    let s = raw;
    const n = s.length;
    if (n > 0 && (isHTTPSpace(s.charCodeAt(0)) || isHTTPSpace(s.charCodeAt(n - 1)))) {
      let a = 0, b = n;
      while (a < b && isHTTPSpace(s.charCodeAt(a))) a++;
      while (b > a && isHTTPSpace(s.charCodeAt(b - 1))) b--;
      s = s.slice(a, b);
    }
    if (invalidValue.test(s)) {
      throw new TypeError("Headers: the value of " + name + " has an invalid character (NUL, CR, LF or one past U+00FF)");
    }
    if (n <= 256) {
      if (headerValues.size >= 256) headerValues.clear();
      headerValues.set(raw, s);
    }
    return s;
  }
  // headersInto appends init's headers (Headers, pairs or a record) to a
  // header list, validated.
  function headersInto(list, init) {
    if (init instanceof Headers) {
      const l = headersListOf(init);
      for (let i = 0; i < l.length; i++) list.push(l[i]);
      return;
    }
    if (typeof init === "object" && init !== null && init[Symbol.iterator] === undefined) {
      // A record, as most often: its own enumerable string keys, in order.
      const keys = Object.keys(init);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i];
        const name = headerName(k);
        list.push(name, headerValue(init[k], name));
      }
      return;
    }
    const kv = pairsOf(init, "Headers", false);
    for (let i = 0; i < kv.length; i += 2) {
      const name = headerName(kv[i]);
      list.push(name, headerValue(kv[i + 1], name));
    }
  }
  // listHas says whether a header list has a header of the (lowercased)
  // name.
  function listHas(l, name) {
    for (let i = 0; i < l.length; i += 2) if (l[i] === name) return true;
    return false;
  }

  let headersListOf, headersFill, headersSorted, newHeaders;

  class Headers {
    // The header list, flat: name (lowercased), value, name, value..., in
    // the order they came.
    #list = [];
    #immutable = false;
    #sorted = null; // the sorted and combined list, flat, while unchanged
    constructor(init = undefined) {
      if (init === undefined || init === INTERNAL) return;
      headersInto(this.#list, init);
    }
    static {
      headersListOf = (h) => h.#list;
      headersFill = (h, init) => {
        headersInto(h.#list, init);
        h.#sorted = null;
      };
      headersSorted = (h) => h.#sortedList();
      // newHeaders makes headers, a copy of from's if given, immutable
      // or not (undefined: as from's are).
      newHeaders = (immutable, from) => {
        const h = new Headers(INTERNAL);
        if (from !== undefined) {
          h.#list = from.#list.slice();
          if (immutable === undefined) immutable = from.#immutable;
        }
        h.#immutable = !!immutable;
        return h;
      };
    }
    #check() {
      if (this.#immutable) throw new TypeError("Headers: these headers are immutable");
      this.#sorted = null;
    }
    append(name, value) {
      needArgs(2, arguments.length, "Headers.append");
      name = headerName(name);
      value = headerValue(value, name);
      this.#check();
      this.#list.push(name, value);
    }
    delete(name) {
      needArgs(1, arguments.length, "Headers.delete");
      name = headerName(name);
      this.#check();
      const l = this.#list;
      let j = 0;
      for (let i = 0; i < l.length; i += 2) {
        if (l[i] === name) continue;
        l[j++] = l[i];
        l[j++] = l[i + 1];
      }
      l.length = j;
    }
    get(name) {
      needArgs(1, arguments.length, "Headers.get");
      name = headerName(name);
      const l = this.#list;
      let v = null;
      for (let i = 0; i < l.length; i += 2) if (l[i] === name) v = v === null ? l[i + 1] : v + ", " + l[i + 1];
      return v;
    }
    getSetCookie() {
      const l = this.#list, out = [];
      for (let i = 0; i < l.length; i += 2) if (l[i] === "set-cookie") out.push(l[i + 1]);
      return out;
    }
    has(name) {
      needArgs(1, arguments.length, "Headers.has");
      return listHas(this.#list, headerName(name));
    }
    set(name, value) {
      needArgs(2, arguments.length, "Headers.set");
      name = headerName(name);
      value = headerValue(value, name);
      this.#check();
      // The first header of the name takes the value, the others go.
      const l = this.#list;
      let found = false, j = 0;
      for (let i = 0; i < l.length; i += 2) {
        if (l[i] === name) {
          if (found) continue;
          found = true;
          l[j++] = name;
          l[j++] = value;
        } else {
          l[j++] = l[i];
          l[j++] = l[i + 1];
        }
      }
      l.length = j;
      if (!found) l.push(name, value);
    }
    forEach(callback, thisArg = undefined) {
      needArgs(1, arguments.length, "Headers.forEach");
      if (typeof callback !== "function") throw new TypeError("Headers.forEach: the callback is not a function");
      for (let i = 0; i < this.#sortedList().length; i += 2) {
        const l = this.#sortedList();
        callback.call(thisArg, l[i + 1], l[i], this);
      }
    }
    // #sortedList is the standard's "sort and combine": by name, each
    // name's values joined by ", ", but for set-cookie, whose values stay
    // apart.
    #sortedList() {
      if (this.#sorted !== null) return this.#sorted;
      const list = this.#list, names = [];
      for (let i = 0; i < list.length; i += 2) if (names.indexOf(list[i]) < 0) names.push(list[i]);
      names.sort();
      const l = [];
      for (let k = 0; k < names.length; k++) {
        const name = names[k];
        let v = null;
        for (let i = 0; i < list.length; i += 2) {
          if (list[i] !== name) continue;
          if (name === "set-cookie") l.push(name, list[i + 1]);
          else v = v === null ? list[i + 1] : v + ", " + list[i + 1];
        }
        if (v !== null) l.push(name, v);
      }
      this.#sorted = l;
      return l;
    }
    #self() {
      return this;
    }
    entries() {
      return new HeadersIterator(this.#self(), 0);
    }
    keys() {
      return new HeadersIterator(this.#self(), 1);
    }
    values() {
      return new HeadersIterator(this.#self(), 2);
    }
  }
  Headers.prototype[Symbol.iterator] = Headers.prototype.entries;
  Object.defineProperty(Headers.prototype, Symbol.iterator, { enumerable: false });
  tag(Headers, "Headers");
  const HeadersIterator = iteratorClass("Headers", (h) => headersSorted(h));
  // hostHeaders makes a response's immutable headers of the host's lines
  // (fetch.go's hostFetch): "name:value\n" each, names lowercased.
  function hostHeaders(raw) {
    const h = newHeaders(true);
    const l = headersListOf(h);
    for (let p = 0; p < raw.length;) {
      const nl = raw.indexOf("\n", p);
      const c = raw.indexOf(":", p);
      l.push(raw.slice(p, c), raw.slice(c + 1, nl));
      p = nl + 1;
    }
    return h;
  }

  // ---- Bodies ---------------------------------------------------------

  // extractBody returns a body (a string or bytes) and sets bodyType, its
  // content type (null: none).
  let bodyType = null;
  function extractBody(v) {
    if (v instanceof URLSearchParams) {
      bodyType = "application/x-www-form-urlencoded;charset=UTF-8";
      return v.toString();
    }
    if (v instanceof ArrayBuffer || v instanceof SharedArrayBuffer || ArrayBuffer.isView(v)) {
      bodyType = null;
      return bytesOf(v, "body");
    }
    bodyType = "text/plain;charset=UTF-8";
    return usv(v);
  }
  function unsupported(what) {
    return Promise.reject(new TypeError(what + " is not supported here: read the body with text(), json(), arrayBuffer() or bytes()"));
  }

  let bodyOf, bodySet, bodyTake;

  // Body is what Request and Response share: the Fetch standard's Body
  // mixin, with the body held whole.
  class Body {
    #body = null; // null, a string or a Uint8Array
    #used = false;
    static {
      bodyOf = (x) => x.#body;
      bodySet = (x, b) => { x.#body = b; };
      bodyTake = (x) => x.#take();
    }
    #take() {
      const b = this.#body;
      if (b === null) return null;
      if (this.#used) throw new TypeError("body used already");
      this.#used = true;
      return b;
    }
    get bodyUsed() {
      return this.#used;
    }
    text() {
      try {
        const b = this.#take();
        return Promise.resolve(b === null ? "" : typeof b === "string" ? b : decodeText(b));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    json() {
      try {
        const b = this.#take();
        return Promise.resolve(JSON.parse(b === null ? "" : typeof b === "string" ? b : decodeText(b)));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    arrayBuffer() {
      try {
        const b = this.#take();
        return Promise.resolve(b === null ? new ArrayBuffer(0) : typeof b === "string" ? utf8Encode(b).buffer : b.slice().buffer);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    bytes() {
      try {
        const b = this.#take();
        return Promise.resolve(b === null ? new Uint8Array(0) : typeof b === "string" ? utf8Encode(b) : b.slice());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    blob() {
      return unsupported("Blob");
    }
    formData() {
      return unsupported("FormData");
    }
  }

  // ---- Request --------------------------------------------------------

  // requestURL is the serialization of a request's URL (s), which must be
  // absolute, without credentials.
  function requestURL(s) {
    let h = fastHref(s), creds = fastCreds;
    if (h === null) {
      const u = parse(s, null);
      if (u === null) throw new TypeError("Request: invalid URL " + JSON.stringify(s) + " (it must be absolute)");
      creds = hasCredentials(u);
      h = serialize(u, false);
    }
    if (creds) throw new TypeError("Request: the URL " + JSON.stringify(s) + " has credentials: send them in an Authorization header");
    return h;
  }
  // requestMethod checks init.method and normalizes it.
  function requestMethod(v) {
    switch (v) {
      case "GET": case "POST": case "PUT": case "DELETE": case "HEAD": case "OPTIONS": case "PATCH":
        return v;
    }
    let m = bytestr(v, "Request: method");
    if (!token.test(m)) throw new TypeError("Request: " + JSON.stringify(m) + " is not a valid method");
    const up = m.toUpperCase();
    switch (up) {
      case "CONNECT": case "TRACE": case "TRACK":
        throw new TypeError("Request: the method " + m + " is forbidden");
      case "DELETE": case "GET": case "HEAD": case "OPTIONS": case "POST": case "PUT":
        m = up;
    }
    return m;
  }
  function requestRedirect(v) {
    const r = str(v);
    if (r !== "follow" && r !== "manual" && r !== "error") {
      throw new TypeError("Request: redirect must be \"follow\", \"manual\" or \"error\", not " + JSON.stringify(r));
    }
    return r;
  }
  function requestSignal(v) {
    if (v !== null && !(v instanceof AbortSignal)) throw new TypeError("Request: signal is not an AbortSignal");
    return v;
  }

  let requestParts;

  class Request extends Body {
    #url; // its serialization
    #method = "GET";
    #headers;
    #redirect = "follow";
    #signal = null;
    constructor(input, init = undefined) {
      super();
      if (input === INTERNAL) return;
      if (input === undefined) throw new TypeError("Request: the URL is undefined"); // as new Request(undefined) is
      init = dict(init, "Request: init");
      let inputBody = null;
      if (input instanceof Request) {
        this.#url = input.#url;
        this.#method = input.#method;
        this.#redirect = input.#redirect;
        this.#signal = input.#signal;
        inputBody = bodyOf(input);
      } else {
        this.#url = requestURL(input instanceof URL ? hrefOf(input) : usv(input));
      }
      if (init.method !== undefined) this.#method = requestMethod(init.method);
      if (init.redirect !== undefined) this.#redirect = requestRedirect(init.redirect);
      if (init.signal !== undefined) this.#signal = requestSignal(init.signal);
      this.#headers = newHeaders(false, init.headers === undefined && input instanceof Request ? input.#headers : undefined);
      if (init.headers !== undefined) headersFill(this.#headers, init.headers);
      const initBody = init.body;
      const hasInitBody = initBody !== undefined && initBody !== null;
      if ((hasInitBody || inputBody !== null) && (this.#method === "GET" || this.#method === "HEAD")) {
        throw new TypeError("Request: a " + this.#method + " request cannot have a body");
      }
      if (hasInitBody) {
        bodySet(this, extractBody(initBody));
        const l = headersListOf(this.#headers);
        if (bodyType !== null && !listHas(l, "content-type")) l.push("content-type", bodyType);
      } else if (inputBody !== null) {
        bodySet(this, bodyTake(input)); // the input's body moves here: it is used
      }
    }
    static {
      requestParts = (r) => [r.#url, r.#method, r.#headers, r.#redirect, r.#signal];
    }
    get method() {
      return this.#method;
    }
    get url() {
      return this.#url;
    }
    get headers() {
      return this.#headers;
    }
    get redirect() {
      return this.#redirect;
    }
    get signal() {
      if (this.#signal === null) this.#signal = new AbortSignal(INTERNAL);
      return this.#signal;
    }
    get credentials() { return "same-origin"; }
    get mode() { return "cors"; }
    get cache() { return "default"; }
    get referrer() { return "about:client"; }
    get referrerPolicy() { return ""; }
    get integrity() { return ""; }
    get keepalive() { return false; }
    get destination() { return ""; }
    get duplex() { return "half"; }
    clone() {
      if (this.bodyUsed) throw new TypeError("Request.clone: body used already");
      const r = new Request(INTERNAL);
      r.#url = this.#url;
      r.#method = this.#method;
      r.#headers = newHeaders(false, this.#headers);
      r.#redirect = this.#redirect;
      r.#signal = this.#signal;
      bodySet(r, bodyOf(this));
      return r;
    }
  }
  tag(Request, "Request");

  // ---- Response -------------------------------------------------------

  function nullBodyStatus(s) {
    return s === 101 || s === 103 || s === 204 || s === 205 || s === 304;
  }
  // status is WebIDL's unsigned short.
  function unsignedShort(v) {
    let n = Number(v);
    if (!Number.isFinite(n)) return 0;
    n = Math.trunc(n) % 65536;
    return n < 0 ? n + 65536 : n;
  }

  let newResponse;

  class Response extends Body {
    #type = "default";
    #status = 200;
    #statusText = "";
    #headers; // Headers, or the host's text of them (hostHeaders)
    #url = "";
    #redirected = false;
    constructor(body = null, init = undefined) {
      super();
      if (body === INTERNAL) return;
      init = dict(init, "Response: init");
      const status = init.status === undefined ? 200 : unsignedShort(init.status);
      if (status < 200 || status > 599) throw new RangeError("Response: the status " + status + " is not in the range 200 to 599");
      const statusText = init.statusText === undefined ? "" : bytestr(init.statusText, "Response: statusText");
      for (let i = 0; i < statusText.length; i++) {
        const c = statusText.charCodeAt(i);
        if (c !== 0x09 && (c < 0x20 || c === 0x7f)) throw new TypeError("Response: the statusText " + JSON.stringify(statusText) + " has an invalid character");
      }
      this.#status = status;
      this.#statusText = statusText;
      this.#headers = newHeaders(false);
      if (init.headers !== undefined) headersFill(this.#headers, init.headers);
      if (body !== null && body !== undefined) {
        if (nullBodyStatus(status)) throw new TypeError("Response: a response with the status " + status + " cannot have a body");
        bodySet(this, extractBody(body));
        const l = headersListOf(this.#headers);
        if (bodyType !== null && !listHas(l, "content-type")) l.push("content-type", bodyType);
      }
    }
    static {
      // newResponse makes a response of the host or of a static method.
      newResponse = (type, status, statusText, headers, body, url, redirected) => {
        const r = new Response(INTERNAL);
        r.#type = type;
        r.#status = status;
        r.#statusText = statusText;
        r.#headers = headers;
        r.#url = url;
        r.#redirected = redirected;
        bodySet(r, body);
        return r;
      };
    }
    static error() {
      return newResponse("error", 0, "", newHeaders(true), null, "", false);
    }
    static json(data, init = undefined) {
      needArgs(1, arguments.length, "Response.json");
      const text = JSON.stringify(data);
      if (text === undefined) throw new TypeError("Response.json: the data cannot be written as JSON");
      const r = new Response(null, init);
      if (nullBodyStatus(r.#status)) throw new TypeError("Response.json: a response with the status " + r.#status + " cannot have a body");
      bodySet(r, text);
      const l = headersListOf(r.#headers);
      if (!listHas(l, "content-type")) l.push("content-type", "application/json");
      return r;
    }
    static redirect(url, status = 302) {
      needArgs(1, arguments.length, "Response.redirect");
      const s = usv(url);
      const u = parse(s, null);
      if (u === null) throw new TypeError("Response.redirect: invalid URL " + JSON.stringify(s));
      status = unsignedShort(status);
      if (status !== 301 && status !== 302 && status !== 303 && status !== 307 && status !== 308) {
        throw new RangeError("Response.redirect: " + status + " is not a redirect status");
      }
      const h = newHeaders(true);
      headersListOf(h).push("location", serialize(u, false));
      return newResponse("default", status, "", h, null, "", false);
    }
    get type() {
      return this.#type;
    }
    get url() {
      return this.#url;
    }
    get redirected() {
      return this.#redirected;
    }
    get status() {
      return this.#status;
    }
    get ok() {
      return this.#status >= 200 && this.#status <= 299;
    }
    get statusText() {
      return this.#statusText;
    }
    get headers() {
      // A fetch's headers are the host's text until read.
      let h = this.#headers;
      if (typeof h === "string") h = this.#headers = hostHeaders(h);
      return h;
    }
    clone() {
      if (this.bodyUsed) throw new TypeError("Response.clone: body used already");
      const h = this.#headers;
      return newResponse(this.#type, this.#status, this.#statusText, typeof h === "string" ? h : newHeaders(undefined, h),
        bodyOf(this), this.#url, this.#redirected);
    }
  }
  tag(Response, "Response");

  // ---- AbortController and AbortSignal --------------------------------

  let signalAbort;

  class AbortSignal {
    #aborted = false;
    #reason = undefined;
    #listeners = [];
    #onabort = null;
    constructor(key) {
      if (key !== INTERNAL) throw new TypeError("AbortSignal: Illegal constructor");
    }
    static {
      signalAbort = (s, reason) => {
        if (s.#aborted) return;
        s.#aborted = true;
        s.#reason = reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason;
        const event = { type: "abort", target: s, currentTarget: s };
        const ls = s.#listeners;
        s.#listeners = [];
        if (typeof s.#onabort === "function") ls.unshift(s.#onabort);
        for (let i = 0; i < ls.length; i++) {
          try {
            if (typeof ls[i] === "function") ls[i].call(s, event);
            else ls[i].handleEvent(event);
          } catch (e) {
            console.error(e);
          }
        }
      };
    }
    static abort(reason = undefined) {
      const s = new AbortSignal(INTERNAL);
      signalAbort(s, reason);
      return s;
    }
    // timeout returns a signal that never aborts: there are no timers
    // (the host bounds each fetch's time).
    static timeout(ms) {
      needArgs(1, arguments.length, "AbortSignal.timeout");
      return new AbortSignal(INTERNAL);
    }
    static any(signals) {
      needArgs(1, arguments.length, "AbortSignal.any");
      const s = new AbortSignal(INTERNAL);
      const list = Array.from(signals);
      for (let i = 0; i < list.length; i++) {
        if (!(list[i] instanceof AbortSignal)) throw new TypeError("AbortSignal.any: not an AbortSignal");
        if (list[i].#aborted) {
          signalAbort(s, list[i].#reason);
          return s;
        }
      }
      for (let i = 0; i < list.length; i++) list[i].addEventListener("abort", () => signalAbort(s, list[i].#reason));
      return s;
    }
    get aborted() {
      return this.#aborted;
    }
    get reason() {
      return this.#reason;
    }
    get onabort() {
      return this.#onabort;
    }
    set onabort(f) {
      this.#onabort = typeof f === "function" ? f : null;
    }
    throwIfAborted() {
      if (this.#aborted) throw this.#reason;
    }
    addEventListener(type, listener, options = undefined) {
      if (str(type) !== "abort" || listener === null || listener === undefined || this.#aborted) return;
      if (this.#listeners.indexOf(listener) >= 0) return;
      this.#listeners.push(listener);
    }
    removeEventListener(type, listener) {
      if (str(type) !== "abort") return;
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    }
  }
  tag(AbortSignal, "AbortSignal");

  class AbortController {
    #signal = new AbortSignal(INTERNAL);
    get signal() {
      return this.#signal;
    }
    abort(reason = undefined) {
      signalAbort(this.#signal, reason);
    }
  }
  tag(AbortController, "AbortController");

  // ---- TextEncoder and TextDecoder ------------------------------------

  class TextEncoder {
    get encoding() {
      return "utf-8";
    }
    encode(input = "") {
      return utf8Encode(usv(input));
    }
    encodeInto(source, destination) {
      needArgs(2, arguments.length, "TextEncoder.encodeInto");
      if (!(destination instanceof Uint8Array)) throw new TypeError("TextEncoder.encodeInto: the destination is not a Uint8Array");
      const s = usv(source);
      let read = 0, written = 0;
      const room = destination.length;
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        const pair = c >= 0xd800 && c <= 0xdbff;
        const size = c < 0x80 ? 1 : c < 0x800 ? 2 : pair ? 4 : 3;
        if (written + size > room) break;
        const b = utf8Encode(pair ? s.slice(i, i + 2) : s[i]);
        destination.set(b, written);
        written += size;
        read += pair ? 2 : 1;
        if (pair) i++;
      }
      return { read: read, written: written };
    }
  }
  tag(TextEncoder, "TextEncoder");

  const utf8Labels = ["unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8"];
  class TextDecoder {
    #fatal;
    #ignoreBOM;
    #state = new DecoderState();
    #bomSeen = false;
    #streaming = false;
    constructor(label = "utf-8", options = undefined) {
      const l = str(label).trim().toLowerCase();
      if (utf8Labels.indexOf(l) < 0) throw new RangeError("TextDecoder: the encoding " + JSON.stringify(str(label)) + " is not supported here (only UTF-8)");
      options = dict(options, "TextDecoder: options");
      this.#fatal = !!options.fatal;
      this.#ignoreBOM = !!options.ignoreBOM;
    }
    get encoding() {
      return "utf-8";
    }
    get fatal() {
      return this.#fatal;
    }
    get ignoreBOM() {
      return this.#ignoreBOM;
    }
    decode(input = undefined, options = undefined) {
      const stream = !!dict(options, "TextDecoder.decode: options").stream;
      const bytes = input === undefined ? new Uint8Array(0)
        : input instanceof ArrayBuffer || input instanceof SharedArrayBuffer ? new Uint8Array(input)
        : ArrayBuffer.isView(input) ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength)
        : bytesOf(input, "TextDecoder.decode");
      if (!this.#streaming) {
        this.#state = new DecoderState();
        this.#bomSeen = false;
      }
      this.#streaming = stream;
      let out = utf8Decode(bytes, this.#state, !stream, this.#fatal);
      if (this.#state.error) {
        this.#state = new DecoderState();
        this.#streaming = false;
        throw new TypeError("TextDecoder.decode: the data is not valid UTF-8");
      }
      if (!this.#ignoreBOM && !this.#bomSeen && out.length > 0) {
        this.#bomSeen = true;
        if (out.charCodeAt(0) === 0xfeff) out = out.slice(1);
      }
      return out;
    }
  }
  tag(TextDecoder, "TextDecoder");

  // ---- fetch ----------------------------------------------------------

  // fetch asks the host, once and synchronously: hostFetch(request)
  // returns the response or the reason the request failed, both as
  // fetch.go's hostFetch writes them. The common call (a URL and at most a
  // method, headers and a body) makes no Request: its parts are checked
  // as Request's constructor checks them and written at once.
  async function fetch(input, init = undefined) {
    if (input === undefined) throw new TypeError("fetch: the URL is undefined");
    let url, method = "GET", list = null, body = null, type = null, redirect = "follow", signal = null;
    if (input instanceof Request) {
      const req = new Request(input, init);
      const parts = requestParts(req);
      url = parts[0];
      method = parts[1];
      list = headersListOf(parts[2]);
      redirect = parts[3];
      signal = parts[4];
      body = bodyTake(req);
    } else {
      url = requestURL(input instanceof URL ? hrefOf(input) : usv(input));
      if (init !== undefined && init !== null) {
        if (typeof init !== "object" && typeof init !== "function") throw new TypeError("Request: init must be an object");
        const m = init.method;
        if (m !== undefined) method = requestMethod(m);
        const r = init.redirect;
        if (r !== undefined) redirect = requestRedirect(r);
        const sg = init.signal;
        if (sg !== undefined) signal = requestSignal(sg);
        const h = init.headers;
        if (h instanceof Headers) {
          list = headersListOf(h);
        } else if (h !== undefined) {
          list = [];
          headersInto(list, h);
        }
        const b = init.body;
        if (b !== undefined && b !== null) {
          if (method === "GET" || method === "HEAD") throw new TypeError("Request: a " + method + " request cannot have a body");
          body = extractBody(b);
          type = bodyType;
        }
      }
    }
    if (signal !== null && signal.aborted) throw signal.reason;
    if (typeof hostFetch !== "function") throw new TypeError("fetch is not available");
    // The request: method, URL (without its fragment) and redirect ("" for
    // follow) on a line each, then a line a header (name:value), an empty
    // line, and the body: "t" and its text, "b" and its bytes in base64, or
    // nothing when there is none.
    const f = url.indexOf("#");
    let msg = method + "\n" + (f < 0 ? url : url.slice(0, f)) + "\n" + (redirect === "follow" ? "" : redirect) + "\n";
    let accept = false, ctype = false;
    if (list !== null) {
      for (let i = 0; i < list.length; i += 2) {
        const n = list[i];
        if (n === "accept") accept = true;
        else if (n === "content-type") ctype = true;
        msg += n + ":" + list[i + 1] + "\n";
      }
    }
    if (type !== null && !ctype) msg += "content-type:" + type + "\n";
    if (!accept) msg += "accept:*/*\n";
    msg += "\n";
    if (body !== null) {
      if (typeof body !== "string") msg += "b" + base64(body, body.length, byteAt);
      else if (body.indexOf("\0") < 0) msg += "t" + body;
      else {
        const bytes = utf8Encode(body); // a NUL would end the host's C string
        msg += "b" + base64(bytes, bytes.length, byteAt);
      }
    }
    const r = hostFetch(msg);
    if (typeof r !== "string" || r === "") throw new TypeError("fetch failed");
    if (r.charCodeAt(0) !== 0x30) throw new TypeError(r.slice(1));
    // "0", the status in 3 digits, "1" if redirected ("0" if not), the
    // status text, "\n", the URL, "\n", a line a header (name:value), an
    // empty line and the body's text.
    const a = r.indexOf("\n", 5);
    const e = a < 0 ? -1 : r.indexOf("\n", a + 1);
    if (e < 0) throw new TypeError("fetch failed: the host's answer is not understood");
    let headers = "", start = e + 2;
    if (r.charCodeAt(e + 1) !== 0x0a) {
      const end = r.indexOf("\n\n", e + 1);
      if (end < 0) throw new TypeError("fetch failed: the host's answer is not understood");
      headers = r.slice(e + 1, end + 1);
      start = end + 2;
    }
    const status = (r.charCodeAt(1) - 48) * 100 + (r.charCodeAt(2) - 48) * 10 + (r.charCodeAt(3) - 48);
    return newResponse("basic", status, r.slice(5, a), headers, nullBodyStatus(status) ? null : r.slice(start),
      r.slice(a + 1, e), r.charCodeAt(4) === 0x31);
  }

  define("URL", URL);
  define("URLSearchParams", URLSearchParams);
  define("Headers", Headers);
  define("Request", Request);
  define("Response", Response);
  define("fetch", fetch);
  define("btoa", btoa);
  define("atob", atob);
  define("AbortController", AbortController);
  define("AbortSignal", AbortSignal);
  define("TextEncoder", TextEncoder);
  define("TextDecoder", TextDecoder);
})(globalThis);
