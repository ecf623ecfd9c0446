//! The default callbacks a new node's callbacks DAT gets (TouchDesigner's names and arguments).

pub const DEFAULT_CALLBACKS: &str = r#"// Web Server DAT callbacks.
// dat      - the Web Server DAT
// request  - method, uri (path), pars (query), clientAddress, serverAddress, data (body), and
//            every header as a key: request.Authorization, request["Content-Type"]
// response - statusCode (404 unless set), statusReason, data; any other key is sent as a header.
// onHTTPRequest must return the response.

fn onHTTPRequest(dat, request, response) {
    response.statusCode = 200;
    response.statusReason = "OK";
    response.data = "<b>datpatch: </b>" + dat.name;
    response
}

// Runs before a WebSocket upgrade (datpatch's own). Leave statusCode at 101 to accept; any other
// status refuses with that answer. response["Sec-WebSocket-Protocol"] picks a subprotocol.
// fn onWebSocketUpgrade(dat, request, response) {
//     response
// }

fn onWebSocketOpen(dat, client, uri) {
}

fn onWebSocketClose(dat, client) {
}

fn onWebSocketReceiveText(dat, client, data) {
    dat.webSocketSendText(client, data);
}

fn onWebSocketReceiveBinary(dat, client, data) {
    dat.webSocketSendBinary(client, data);
}

fn onWebSocketReceivePing(dat, client, data) {
    // The pong goes back automatically (RFC 6455 requires it).
}

fn onWebSocketReceivePong(dat, client, data) {
}

fn onServerStart(dat) {
}

fn onServerStop(dat) {
}
"#;
