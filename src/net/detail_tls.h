// Private to src/net: the server-side TLS context. Loads the PEM certificate chain and private key
// named by TlsFiles and fixes the protocol floor (TLS 1.2). Kept out of server.h so that OpenSSL
// and asio::ssl stay inside src/net/*.cpp. Thread-safety: the context is built once in
// HttpServer::listen() and then only read by handshakes (OpenSSL SSL_CTX is safe for concurrent
// SSL_new).
#pragma once

#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "core/result.h"
#include "net/server.h"

namespace edgecoder::net::detail {

// Errors: Errc::invalid_argument naming the file that is missing, unreadable or invalid, or saying
// that the key does not belong to the certificate.
core::Result<std::shared_ptr<boost::asio::ssl::context>> make_server_tls_context(
    const TlsFiles& files);

}  // namespace edgecoder::net::detail
