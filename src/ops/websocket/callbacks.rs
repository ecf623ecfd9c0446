//! The default callbacks a new node's callbacks DAT gets (TouchDesigner's names and arguments).

pub const DEFAULT_CALLBACKS: &str = r"// WebSocket DAT callbacks.
// dat - the WebSocket DAT; rowIndex - the table row the message was written to.
// dat.sendText(text), sendBinary(blob), sendPing(), sendPong(blob) return the bytes sent, or -1
// when not connected and -2 when the outgoing queue is full.
// onConnect runs after every (re)connect: subscribe or authenticate there.

fn onConnect(dat) {
}

fn onDisconnect(dat) {
}

fn onReceiveText(dat, rowIndex, message) {
}

fn onReceiveBinary(dat, contents) {
}

fn onReceivePing(dat, contents) {
    // The pong goes back automatically (RFC 6455 requires it).
}

fn onReceivePong(dat, contents) {
}

fn onMonitorMessage(dat, message) {
}
";
