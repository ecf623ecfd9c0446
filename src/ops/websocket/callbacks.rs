//! The default callbacks a new WebSocket DAT's callbacks DAT gets: TouchDesigner's template.

pub const DEFAULT_CALLBACKS: &str = r"# me - this DAT
#
# dat - the DAT that received a message
# rowIndex - the row number the message was placed into
# message - a unicode representation of the text
#
# Only text frame messages will be handled in this function.
# datpatch: sendText/sendBinary/sendPing/sendPong return the bytes sent, -1 when not connected
# and -2 when the outgoing queue is full; onConnect runs after every (re)connect.

def onConnect(dat):
	return

# me - this DAT
# dat - the DAT that received a message
def onDisconnect(dat):
	return

# me - this DAT
# dat - the DAT that received a message
# rowIndex - the row number the message was placed into
# message - a unicode representation of the text
#
# Only text frame messages will be handled in this function.

def onReceiveText(dat, rowIndex, message):
	return

# me - this DAT
# dat - the DAT that received a message
# contents - a byte array of the message contents
#
# Only binary frame messages will be handled in this function.

def onReceiveBinary(dat, contents):
	return

# me - this DAT
# dat - the DAT that received a message
# contents - a byte array of the message contents
#
# Only ping messages will be handled in this function.

def onReceivePing(dat, contents):
	dat.sendPong(contents) # send a reply with same message
	return

# me - this DAT
# dat - the DAT that received a message
# contents - a byte array of the message contents
#
# Only pong messages will be handled in this function.

def onReceivePong(dat, contents):
	return

# me - this DAT
# dat - the DAT that received a message
# message - a unicode representation of the message
#
# Use this method to monitor the websocket status messages

def onMonitorMessage(dat, message):
	return
";
