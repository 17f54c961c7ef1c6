// The FMS application model, in JavaScript, run in every instance's context before main.asc.
//
// Native functions live on the hidden `__ascend` object (see runtime.rs); the objects scripts
// see (application, Client, Stream, trace, load, setInterval...) are plain JavaScript built
// here, holding ids, the way FMS scripts expect them: writable, extensible, prototype-patchable.
// The `__ascend_*` functions below are the entry points the host calls for each event.

var __ascend_clients = {};
var __ascend_timers = {};
var __ascend_responders = {};
var __ascend_nextCallId = 1;
var __ascend_classes = {};
var __ascend_streams = {};

function __ascend_hide(object, name, value) {
    Object.defineProperty(object, name, { value: value, writable: true, enumerable: false, configurable: true });
}

function trace() {
    var parts = [];
    for (var i = 0; i < arguments.length; i++) parts.push(String(arguments[i]));
    __ascend.trace(parts.join(" "));
}

function load(path) {
    __ascend.load(String(path));
}

function __ascend_timer(args, repeat) {
    var fn = args[0], self = null, ms, rest;
    if (fn !== null && typeof fn == "object" && typeof args[1] == "string") {
        // setInterval(object, "methodName", ms, ...args)
        self = fn;
        var method = args[1];
        fn = function () { return self[method].apply(self, arguments); };
        ms = args[2];
        rest = Array.prototype.slice.call(args, 3);
    } else {
        if (typeof fn == "string") {
            var code = fn;
            fn = function () { return (0, eval)(code); };
        }
        ms = args[1];
        rest = Array.prototype.slice.call(args, 2);
    }
    if (typeof fn != "function") throw new TypeError("setInterval/setTimeout needs a function");
    var id = __ascend.setTimer(Number(ms) || 0, repeat);
    __ascend_timers[id] = { fn: fn, args: rest, repeat: repeat };
    return id;
}

function setInterval() { return __ascend_timer(arguments, true); }
function setTimeout() { return __ascend_timer(arguments, false); }
function clearInterval(id) {
    if (__ascend_timers[id]) {
        delete __ascend_timers[id];
        __ascend.clearTimer(Number(id));
    }
}
var clearTimeout = clearInterval;

function __ascend_fire(id) {
    var timer = __ascend_timers[id];
    if (!timer) return;
    if (!timer.repeat) delete __ascend_timers[id];
    timer.fn.apply(null, timer.args);
}

function Client() {}
Client.prototype.call = function (method, responder) {
    var args = Array.prototype.slice.call(arguments, 2);
    var callId = 0;
    if (responder) {
        callId = __ascend_nextCallId++;
        __ascend_responders[callId] = responder;
    }
    __ascend.callClient(this.__id, String(method), callId, args);
    return true;
};
Client.prototype.ping = function () { return __ascend.pingClient(this.__id); };
Client.prototype.getStats = function () { return __ascend.clientStats(this.__id); };
Client.prototype.getBandwidthLimit = function (direction) {
    return direction == 0 ? this.__bandwidthUp : this.__bandwidthDown;
};
Client.prototype.setBandwidthLimit = function (up, down) {
    if (up > 0) this.__bandwidthUp = up;
    if (down > 0) this.__bandwidthDown = down;
};
Object.defineProperty(Client.prototype, "readAccess", {
    get: function () { return this.__readAccess; },
    set: function (value) {
        this.__readAccess = String(value);
        __ascend.setAccess(this.__id, this.__readAccess, this.__writeAccess);
    },
    enumerable: true, configurable: true
});
Object.defineProperty(Client.prototype, "writeAccess", {
    get: function () { return this.__writeAccess; },
    set: function (value) {
        this.__writeAccess = String(value);
        __ascend.setAccess(this.__id, this.__readAccess, this.__writeAccess);
    },
    enumerable: true, configurable: true
});

// A live stream of this instance, as onPublish/onUnpublish receive it. Its methods (play,
// record, send...) arrive with multipoint publishing.
function Stream(name, query) {
    this.name = name;
    this.publishQueryString = query;
}

var application = {
    name: __ascend_info.name,
    server: __ascend_info.server,
    hostname: __ascend_info.hostname,
    config: __ascend_info.config,
    allowDebug: false,
    clients: [],
    acceptConnection: function (client) {
        if (!client || client.__decided) return false;
        client.__decided = true;
        application.clients.push(client);
        __ascend.accept(client.__id);
        return true;
    },
    rejectConnection: function (client, errorObject) {
        if (!client || client.__decided) return false;
        client.__decided = true;
        __ascend.reject(client.__id, errorObject === undefined ? null : errorObject);
        return true;
    },
    disconnect: function (client) {
        if (!client) return false;
        __ascend.disconnect(client.__id);
        return true;
    },
    broadcastMsg: function (method) {
        var args = Array.prototype.slice.call(arguments, 1);
        for (var i = 0; i < application.clients.length; i++) {
            __ascend.callClient(application.clients[i].__id, String(method), 0, args);
        }
        return true;
    },
    getStats: function () { return __ascend.appStats(); },
    gc: function () { __ascend.gc(); return true; },
    shutdown: function () { __ascend.shutdown(); return true; },
    registerClass: function (name, constructor) {
        __ascend_classes[name] = constructor;
        if (constructor) __ascend_hide(constructor, "__ascendClassName", name);
        return true;
    }
};

// Connect: FMS semantics of onConnect's return value. true accepts, false rejects, anything
// else leaves the client pending until acceptConnection / rejectConnection.
// `callArgs` is onConnect's argument list: the client the host built (client_object.rs), then
// what the client passed to connect.
function __ascend_connect(callArgs) {
    var client = callArgs[0];
    __ascend_clients[client.__id] = client;
    var result = true;
    if (typeof application.onConnect == "function") {
        try {
            result = application.onConnect.apply(application, callArgs);
        } catch (e) {
            if (!client.__decided) application.rejectConnection(client, null);
            throw e;
        }
    }
    if (client.__decided) return;
    if (result === true) application.acceptConnection(client);
    else if (result === false) application.rejectConnection(client, null);
}

// A client that was connected before this context existed (hot reload, restart).
// `client` is built by the host (client_object.rs), already decided and with its access.
function __ascend_restoreClient(client) {
    __ascend_clients[client.__id] = client;
    application.clients.push(client);
}

// Removes array[index], keeping the order (FMS lists clients in connection order), moving the
// fewer of the elements before or after it. Not splice: Boa's splice moves every element
// through the generic property operations and builds an array of the removed ones (profiled:
// a fifth of the script thread's time per setup with 100 clients connected). Clients mostly
// leave in the order they came, so the index is usually near the front, where shift() does
// the moving natively for a dense array.
function __ascend_removeAt(array, index) {
    var last = array.length - 1;
    var i;
    if (index < last - index) {
        for (i = index; i > 0; i--) array[i] = array[i - 1];
        array.shift();
    } else {
        for (i = index; i < last; i++) array[i] = array[i + 1];
        array.length = last;
    }
}

function __ascend_disconnect(id) {
    var client = __ascend_clients[id];
    if (!client) return;
    delete __ascend_clients[id];
    var index = application.clients.indexOf(client);
    if (index < 0) return; // never accepted: FMS calls no onDisconnect
    __ascend_removeAt(application.clients, index);
    if (typeof application.onDisconnect == "function") application.onDisconnect(client);
}

function __ascend_publish(id, name, query) {
    var stream = new Stream(name, query);
    __ascend_streams[name] = stream;
    if (typeof application.onPublish == "function") application.onPublish(__ascend_clients[id], stream);
}

function __ascend_unpublish(id, name) {
    var stream = __ascend_streams[name] || new Stream(name, "");
    delete __ascend_streams[name];
    if (typeof application.onUnpublish == "function") application.onUnpublish(__ascend_clients[id], stream);
}

var __ascend_reserved = {
    closeStream: 1, connect: 1, createStream: 1, deleteStream: 1, onStatus: 1, pause: 1, play: 1,
    publish: 1, receiveAudio: 1, receiveVideo: 1, seek: 1, getBandwidthLimit: 1,
    setBandwidthLimit: 1, getStats: 1, ping: 1, call: 1
};

// A client's nc.call("name" or "obj/method", responder, ...args). Returns
// {found: false} when there is no such method, else {value}.
function __ascend_call(id, method, args) {
    var client = __ascend_clients[id];
    if (!client) return { found: false };
    var path = method.split("/");
    if (path.length == 1 && __ascend_reserved[method]) return { found: false };
    var self = client, target = client;
    for (var i = 0; i < path.length; i++) {
        if (target === null || target === undefined) return { found: false };
        self = target;
        target = target[path[i]];
    }
    if (typeof target != "function") return { found: false };
    return { found: true, value: target.apply(self, args) };
}

function __ascend_response(callId, success, values) {
    var responder = __ascend_responders[callId];
    if (!responder) return;
    delete __ascend_responders[callId];
    var handler = success ? responder.onResult : responder.onStatus;
    if (typeof handler == "function") handler.apply(responder, values);
}

function __ascend_start() {
    if (typeof application.onAppStart == "function") application.onAppStart();
}

function __ascend_stop(info) {
    if (typeof application.onAppStop == "function") return application.onAppStop(info) !== false;
    return true;
}

function __ascend_status(info) {
    if (typeof application.onStatus == "function") application.onStatus(info);
}

function __ascend_typed(className, object) {
    var constructor = __ascend_classes[className];
    if (typeof constructor == "function") Object.setPrototypeOf(object, constructor.prototype);
    return object;
}

// ---- Multipoint publishing: server-side NetConnection, NetStream and Stream ----

var __ascend_netConnections = {};
var __ascend_netStreams = {};

function NetConnection() {
    __ascend_hide(this, "__id", __ascend.newId());
    this.isConnected = false;
    this.uri = null;
    this.objectEncoding = 0;
    __ascend_netConnections[this.__id] = this;
}
NetConnection.prototype.connect = function (uri) {
    this.uri = String(uri);
    __ascend.ncConnect(this.__id, this.uri, Array.prototype.slice.call(arguments, 1));
    return true;
};
NetConnection.prototype.call = function (method, responder) {
    var callId = 0;
    if (responder) {
        callId = __ascend_nextCallId++;
        __ascend_responders[callId] = responder;
    }
    __ascend.ncCall(this.__id, String(method), callId, Array.prototype.slice.call(arguments, 2));
    return true;
};
NetConnection.prototype.close = function () {
    __ascend.ncClose(this.__id);
    this.isConnected = false;
};

function NetStream(connection) {
    if (!connection || connection.__id === undefined) throw new TypeError("new NetStream(netConnection)");
    __ascend_hide(this, "__id", __ascend.newId());
    __ascend_hide(this, "__nc", connection.__id);
    this.bufferTime = 0;
    this.time = 0;
    __ascend_netStreams[this.__id] = this;
}
NetStream.prototype.attach = function (stream) {
    __ascend.nsAttach(this.__id, this.__nc, stream ? String(stream.name) : null);
    return true;
};
NetStream.prototype.publish = function (name, how) {
    if (name === false || name === null || name === undefined) __ascend.nsUnpublish(this.__id, this.__nc);
    else __ascend.nsPublish(this.__id, this.__nc, String(name), how ? String(how) : "live");
    return true;
};
NetStream.prototype.setBufferTime = function (seconds) { this.bufferTime = Number(seconds) || 0; };
NetStream.prototype.send = function (handler) {
    __ascend.nsSend(this.__id, this.__nc, Array.prototype.slice.call(arguments, 0));
    return true;
};

Stream.get = function (name) {
    name = String(name);
    if (!__ascend_streams[name]) __ascend_streams[name] = new Stream(name, "");
    return __ascend_streams[name];
};
Stream.length = function () { return -1; }; // live streams have no length
Stream.destroy = function (stream) {
    if (!stream) return false;
    __ascend.streamStop(String(stream.name));
    delete __ascend_streams[stream.name];
    return true;
};
Stream.prototype.bufferTime = 0;
Stream.prototype.time = 0;
Stream.prototype.setBufferTime = function (seconds) { this.bufferTime = Number(seconds) || 0; };
Stream.prototype.play = function (source, start, length, reset, remoteConnection) {
    if (source === false || source === null) {
        __ascend.streamStop(this.name);
        return true;
    }
    __ascend.streamPlay(this.name, String(source), remoteConnection ? remoteConnection.__id : 0);
    return true;
};

function __ascend_ncStatus(id, info) {
    var nc = __ascend_netConnections[id];
    if (!nc) return;
    if (info.code == "NetConnection.Connect.Success") nc.isConnected = true;
    else if (info.level == "error" || info.code == "NetConnection.Connect.Closed") nc.isConnected = false;
    if (typeof nc.onStatus == "function") nc.onStatus(info);
}

function __ascend_ncInvoked(id, method, args) {
    var nc = __ascend_netConnections[id];
    if (!nc || typeof nc[method] != "function") return { found: false };
    return { found: true, value: nc[method].apply(nc, args) };
}

function __ascend_nsStatus(id, info) {
    var ns = __ascend_netStreams[id];
    if (ns && typeof ns.onStatus == "function") ns.onStatus(info);
}

function __ascend_streamStatus(name, info) {
    var stream = __ascend_streams[name];
    if (stream && typeof stream.onStatus == "function") stream.onStatus(info);
}

// Ascend addition: FMS has no play event; edges use it to pull on demand.
function __ascend_play(id, name) {
    if (typeof application.onPlay == "function") application.onPlay(__ascend_clients[id], Stream.get(name));
}
