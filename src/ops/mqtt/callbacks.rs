//! The default callbacks a new MQTT Client DAT's callbacks DAT gets: TouchDesigner's template.

pub const DEFAULT_CALLBACKS: &str = r"# me - this DAT
#
# dat - the connected MQTT Client DAT
# msg - why a connection, subscription or unsubscription failed
#
# datpatch: the DAT reconnects by itself (backoff 0.5 s to 30 s) and runs onConnect again after
# every reconnect, so subscribe there.

def onConnect(dat):
	return

def onConnectFailure(dat, msg):
	return

def onConnectionLost(dat, msg):
	return

def onSubscribe(dat):
	return

def onSubscribeFailure(dat, msg):
	return

def onUnsubscribe(dat):
	return

def onUnsubscribeFailure(dat, msg):
	return

def onPublish(dat):
	return

# topic - the topic of the message
# payload - the message contents, as bytes
# qos - the QoS it was delivered with (0, 1 or 2)
# retained - whether the broker kept it for new subscribers
# dup - whether it may be a redelivery
def onMessage(dat, topic, payload, qos, retained, dup):
	return
";
