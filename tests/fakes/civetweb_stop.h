// stopCivetweb: stops a test fake's civetweb server in milliseconds rather than seconds.
//
// What a reader gets wrong: mg_stop() alone waits for civetweb's listener to look at its stop
// flag, which it does only every 2 s; a connection of our own to the listening port wakes it.
#pragma once

struct mg_context;

namespace nodewarden::testing {

// Stops ctx (listening on 127.0.0.1:port) and returns once civetweb's threads have ended.
void stopCivetweb(mg_context* ctx, int port);

}  // namespace nodewarden::testing
