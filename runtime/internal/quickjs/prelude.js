// What a Segment function finds around it: the error classes and console.
// Evaluated once per instance, before the function's file.
(function (g) {
  "use strict";
  function define(name, value) {
    Object.defineProperty(g, name, { value: value, writable: true, configurable: true, enumerable: false });
  }
  function errorClass(name) {
    const C = class extends Error {
      constructor(message) {
        super(message);
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
    // The event reaches the handler through proxies that note any change
    // (a set, delete or defineProperty at any depth), so that an event the
    // handler did not change flows on as the host's bytes, without
    // JSON.stringify (about half of a delivery's cost).
    let changed = false;
    // The proxies of the current event's objects, so that an object read
    // twice is the same proxy. A Map, cleared after each event: a WeakMap
    // whose values (the proxies) hold their keys would keep them until the
    // engine's cycle collector runs.
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
    function dispatch(eventJSON) {
      out = "";
      proxies.clear(); // an earlier handler's promise that never settled
      logs = [];
      logBytes = 0;
      logsCut = false;
      let event;
      try {
        event = JSON.parse(eventJSON);
      } catch (e) {
        finish("3", "the event is not JSON: " + reasonOf(e));
        return;
      }
      const type = event !== null && typeof event === "object" ? event.type : undefined;
      changed = false;
      if (event !== null && typeof event === "object") event = wrap(event);
      const name = handlerNames[type];
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
