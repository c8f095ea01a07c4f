// What a Segment function finds around it: the error classes and console.
// Evaluated once per instance, before the function's file.
(function (g) {
  "use strict";
  function define(name, value) {
    Object.defineProperty(g, name, { value: value, writable: true, configurable: true, enumerable: false });
  }
  // The verdict classes keep no stack trace: they are verdicts, not
  // faults, and capturing the stack is most of what a throw costs.
  function errorClass(name) {
    const C = class extends Error {
      constructor(message) {
        const limit = Error.stackTraceLimit;
        Error.stackTraceLimit = 0;
        try {
          super(message);
        } finally {
          Error.stackTraceLimit = limit;
        }
        this.name = name;
      }
    };
    Object.defineProperty(C, "name", { value: name });
    define(name, C);
    return C;
  }
  // The order is the host's verdict number (sdk/abi Result) minus one.
  const classes = [
    errorClass("DropEvent"),
    errorClass("EventNotSupported"),
    errorClass("InvalidEventPayload"),
    errorClass("ValidationError"),
    errorClass("RetryError"),
  ];

  // console's lines go to the event's logs, collected here and taken by
  // the host with the verdict; past maxLogBytes the rest is cut and the
  // host is told.
  let logs = [];
  let logBytes = 0;
  let logsCut = false;
  let maxLogBytes = 65536;
  function text(v) {
    if (typeof v === "string") return v;
    if (v instanceof Error) return v.stack ? v.name + ": " + v.message + "\n" + v.stack : v.name + ": " + v.message;
    if (typeof v === "object" && v !== null) {
      try { return JSON.stringify(v); } catch (e) { return String(v); }
    }
    return String(v);
  }
  function logger(level) {
    return function () {
      if (logsCut) return;
      let line = "";
      for (let i = 0; i < arguments.length; i++) line += (i ? " " : "") + text(arguments[i]);
      logBytes += line.length;
      if (logBytes > maxLogBytes) { logsCut = true; return; }
      logs.push(level, line);
    };
  }
  // The host's functions, which it installs after the prelude.
  let hostGet, hostConsent;
  define("__insertfn_install", function (get, consent, fetch, webSource) {
    delete g.__insertfn_install;
    hostGet = get;
    hostConsent = consent;
    installWeb(fetch, webSource);
  });

  // The web platform's globals (web.js: fetch, URL, Headers, ...) are
  // evaluated on first use: compiling web.js costs an instance about
  // 12 ms, which a function that never touches them should not pay. Until
  // then each is an accessor that evaluates web.js (whose source the host
  // gives) and returns what it defined.
  const webNames = ["URL", "URLSearchParams", "Headers", "Request", "Response", "fetch", "btoa", "atob",
    "AbortController", "AbortSignal", "TextEncoder", "TextDecoder"];
  function installWeb(hostFetch, webSource) {
    let loaded = false;
    function load() {
      if (loaded) return;
      loaded = true;
      for (const n of webNames) delete g[n];
      (0, eval)(webSource()); // indirect: a global script
      const install = g.__insertfn_web_install;
      install(hostFetch);
    }
    for (const n of webNames) {
      Object.defineProperty(g, n, {
        get() { load(); return g[n]; },
        set(v) { load(); g[n] = v; },
        enumerable: false,
        configurable: true,
      });
    }
  }

  // insertfn.consent: the host's consent store, looked up and compared
  // with the event on the host (as the Go SDK's LookupConsent and
  // CompareConsent do), without an HTTP call. The id is a string; absent
  // (or the event itself) it is the event's own ids, userId then
  // anonymousId. The status names follow sdk/abi's ConsentStatus.
  const statuses = ["found", "same", "differs", "no_record", "no_event_consent", "no_id", "unavailable"];
  function consentCall(op, id) {
    const r = hostConsent(op + (id === undefined || id === null || typeof id === "object" ? "" : String(id)));
    return r;
  }
  // A comparison's differences are parsed when they are read.
  class Comparison {
    constructor(status, flags, json) {
      this.status = status;
      this.mismatch = flags !== 0; // a category or purpose known to both sides differs
      this.categoryMismatch = (flags & 1) !== 0;
      this.purposeMismatch = (flags & 2) !== 0;
      Object.defineProperty(this, "_json", { value: json });
    }
    get differences() {
      const d = this._json === "" ? [] : JSON.parse(this._json);
      Object.defineProperty(this, "differences", { value: d, enumerable: true });
      return d;
    }
    toJSON() {
      return { status: this.status, mismatch: this.mismatch, categoryMismatch: this.categoryMismatch,
        purposeMismatch: this.purposeMismatch, differences: this.differences };
    }
  }
  define("insertfn", Object.freeze({
    consent: Object.freeze({
      // lookup(id): {status: "found", categories: {Name: bool}, purposes:
      // [{regulation, purpose, consented, timestamp}]}, or {status} alone:
      // "no_record", "no_id" or "unavailable".
      lookup(id) {
        const r = consentCall("l", id);
        const status = statuses[r.charCodeAt(0) - 48];
        if (status !== "found") return { status: status };
        const rec = JSON.parse(r.slice(2));
        return { status: status, categories: rec.categories, purposes: rec.purposes };
      },
      // compare(id): {status, mismatch, categoryMismatch, purposeMismatch,
      // differences}: status "same" or "differs" (then differences lists
      // each category and purpose [{category} or {regulation, purpose},
      // inEvent, eventConsented, inStored, storedConsented, storedAt]), or
      // "no_record", "no_event_consent", "no_id", "unavailable".
      compare(id) {
        const r = consentCall("c", id);
        return new Comparison(statuses[r.charCodeAt(0) - 48], r.charCodeAt(1) - 48, r.slice(2));
      },
    }),
  }));

  // Levels as in sdk/abi: debug 0, info 1, warn 2, error 3.
  define("console", Object.freeze({
    log: logger(1), info: logger(1), debug: logger(0), warn: logger(2), error: logger(3),
  }));

  // Handler names by event type, as Segment calls them.
  const handlerNames = {
    track: "onTrack", identify: "onIdentify", page: "onPage", screen: "onScreen",
    group: "onGroup", alias: "onAlias", delete: "onDelete",
  };

  // bind is called once, after the function's file, with its handlers (top
  // level function, let or const declarations alike), and returns what the
  // host calls per event.
  define("__insertfn_bind", function (handlers, settings, maxLogs) {
    delete g.__insertfn_bind;
    maxLogBytes = maxLogs;
    let out = "";
    // finish sets out: the verdict's digit, whether there are logs (1) or
    // not (0), then the event (deliver) or the reason.
    function finish(digit, payload) {
      proxies.clear();
      states.clear();
      root = null;
      out = digit + (logs.length > 0 || logsCut ? "1" : "0") + payload;
    }
    function verdictOf(e) {
      for (let i = 0; i < classes.length; i++) if (e instanceof classes[i]) return i + 1;
      return 6; // FunctionError
    }
    function reasonOf(e) {
      if (e instanceof Error) {
        const k = verdictOf(e);
        if (k !== 6) return e.message === undefined ? "" : String(e.message);
        return e.name + ": " + e.message;
      }
      try { return "a non-Error was thrown: " + (typeof e === "object" ? JSON.stringify(e) : String(e)); }
      catch (x) { return "a non-Error was thrown"; }
    }
    function failed(e) {
      finish(String(verdictOf(e)), reasonOf(e));
    }
    // The event stays on the host. The handler gets a lazy proxy of it:
    // reading a property asks the host for that one value (hostGet, gjson
    // on the host's copy), an object or array read is another lazy proxy,
    // and nothing is parsed that the handler does not read. Anything that
    // needs a whole object (Object.keys, a write, a delete, JSON.stringify
    // or a spread of it) first materializes the event: the host's JSON is
    // parsed once, and every lazy proxy made so far binds to its object.
    // Writes are noted (changed), so that an unchanged event flows on as
    // the host's bytes, without JSON.stringify.
    let changed = false;
    let root = null; // the materialized event
    // The proxies of the materialized event's objects, so that an object
    // read twice is the same proxy. A Map, cleared after each event: a
    // WeakMap whose values (the proxies) hold their keys would keep them
    // until the engine's cycle collector runs.
    const proxies = new Map();
    const traps = {
      get(t, k, r) {
        const v = Reflect.get(t, k, r);
        return v !== null && typeof v === "object" ? wrap(v) : v;
      },
      // The target is the receiver: the event's objects are plain data,
      // and QuickJS-ng finds a proxy receiver's array length inconsistent.
      set(t, k, v) { changed = true; return Reflect.set(t, k, v); },
      deleteProperty(t, k) { changed = true; return Reflect.deleteProperty(t, k); },
      defineProperty(t, k, d) { changed = true; return Reflect.defineProperty(t, k, d); },
      setPrototypeOf(t, p) { changed = true; return Reflect.setPrototypeOf(t, p); },
    };
    function wrap(o) {
      let p = proxies.get(o);
      if (p === undefined) {
        p = new Proxy(o, traps);
        proxies.set(o, p);
      }
      return p;
    }
    // The lazy proxies share their traps; each one's state is found by its
    // target (one Map per event), which makes a proxy cheap to create.
    const states = new Map();
    function materialize() {
      if (root !== null) return;
      root = JSON.parse(hostGet(""));
      // States come in the order they were made: a parent before its
      // children.
      for (const st of states.values()) {
        const o = st.parent === null ? root : st.parent.obj[st.key];
        st.obj = o !== null && typeof o === "object" ? o : st.array ? [] : {};
        proxies.set(st.obj, st.proxy); // the object read again is the same proxy
      }
    }
    function real(t) {
      const st = states.get(t);
      if (st.obj === null) materialize();
      return st.obj;
    }
    // gjson's path syntax: a key's special characters are escaped. Keys
    // repeat from event to event: their escaped forms are kept (a regexp
    // test costs about 2 us in the engine, a Map lookup a tenth of that).
    const specials = /[\\.*?|#@!=<>%~:]/g;
    const escaped = new Map();
    function esc(k) {
      let e = escaped.get(k);
      if (e === undefined) {
        e = k.replace(specials, "\\$&");
        if (escaped.size < 4096) escaped.set(k, e);
      }
      return e;
    }
    const index = /^(0|[1-9][0-9]*)$/;
    const lazyTraps = {
      get(t, k, r) {
        const st = states.get(t);
        if (st.obj !== null) {
          const v = Reflect.get(st.obj, k);
          return v !== null && typeof v === "object" ? wrap(v) : v;
        }
        if (typeof k !== "string") return Reflect.get(t, k, r);
        let v = st.read === null ? undefined : st.read[k];
        if (v !== undefined) return v;
        let p;
        if (st.array) {
          if (k === "length") p = st.path + ".#";
          else if (index.test(k)) p = st.path + "." + k;
          else return Reflect.get(t, k, r); // a method of Array.prototype
        } else {
          p = st.path === "" ? esc(k) : st.path + "." + esc(k);
        }
        const raw = hostGet(p);
        if (raw === undefined) return Reflect.get(t, k, r); // not the event's: a method of its prototype
        if (raw === "{") v = lazy(st, k, p, {}, false);
        else if (raw === "[") v = lazy(st, k, p, [], true);
        else if (raw === "true") v = true;
        else if (raw === "false") v = false;
        else if (raw === "null") v = null;
        else v = JSON.parse(raw);
        if (st.read === null) st.read = Object.create(null);
        st.read[k] = v;
        return v;
      },
      set(t, k, v) { changed = true; return Reflect.set(real(t), k, v); },
      deleteProperty(t, k) { changed = true; return Reflect.deleteProperty(real(t), k); },
      defineProperty(t, k, d) { changed = true; return Reflect.defineProperty(real(t), k, d); },
      has(t, k) { return Reflect.has(real(t), k); },
      ownKeys(t) { return Reflect.ownKeys(real(t)); },
      getOwnPropertyDescriptor(t, k) { return Reflect.getOwnPropertyDescriptor(real(t), k); },
    };
    // lazy makes the proxy of the object at key of parent's (null: the
    // event), at path.
    function lazy(parent, key, path, target, array) {
      const st = { parent: parent, key: key, path: path, array: array, obj: null, proxy: new Proxy(target, lazyTraps), read: null };
      states.set(target, st);
      return st.proxy;
    }
    // done finishes a delivery: an empty payload says the event is the
    // host's, unchanged.
    function done(returned, event) {
      const next = returned !== null && typeof returned === "object" ? returned : event;
      if (next === event && !changed) {
        finish("0", "");
        return;
      }
      try {
        const json = JSON.stringify(next);
        finish("0", json);
      } catch (e) {
        finish("6", "the event cannot be written as JSON: " + reasonOf(e));
      }
    }
    // dispatch handles one event, which the host has checked is a JSON
    // object; type is its type when that is a string (the host read it).
    // It returns the outcome (see finish), or "" when the handler's
    // promise has not settled yet (take returns it once it has).
    function dispatch(type) {
      out = "";
      proxies.clear(); // an earlier handler's promise that never settled
      states.clear();
      root = null;
      changed = false;
      logs = [];
      logBytes = 0;
      logsCut = false;
      const target = {};
      const event = lazy(null, "", "", target, false);
      if (typeof type === "string") {
        const st = states.get(target);
        st.read = Object.create(null);
        st.read.type = type;
      }
      run(event, type);
      const o = out;
      out = "";
      return o;
    }
    function run(event, type) {
      const name = typeof type === "string" && Object.prototype.hasOwnProperty.call(handlerNames, type) ? handlerNames[type] : undefined;
      const handler = name === undefined ? undefined : handlers[name];
      if (typeof handler !== "function") {
        finish("2", (typeof type === "string" ? type : "an event without a type") + " is not supported");
        return;
      }
      try {
        const r = handler(event, settings);
        if (r !== null && typeof r === "object" && typeof r.then === "function") {
          r.then(function (v) { done(v, event); }, failed);
        } else {
          done(r, event);
        }
      } catch (e) {
        failed(e);
      }
    }
    // take returns out: empty while an async handler has not settled.
    function take() {
      const o = out;
      out = "";
      return o;
    }
    // takeLogs returns the logs as JSON: level, line, level, line...,
    // and whether some were cut.
    function takeLogs() {
      const l = logs;
      const cut = logsCut;
      logs = [];
      return JSON.stringify({ logs: l, cut: cut });
    }
    return [dispatch, take, takeLogs];
  });
})(globalThis);
