// Server TLS context (see detail_tls.h).
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fstream>
#include <system_error>

#include "net/detail_tls.h"

namespace edgecoder::net::detail {

namespace {

namespace ssl = boost::asio::ssl;

std::string tls_openssl_reason(const boost::system::error_code& ec) {
  std::string reason = ec.message();
  return reason.empty() ? std::string("unknown TLS error") : reason;
}

core::Result<void> tls_check_readable(const std::filesystem::path& file, std::string_view what) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return core::Error(
        core::Errc::invalid_argument,
        std::string("cannot read TLS ") + std::string(what) + " file " + file.string());
  }
  return {};
}

}  // namespace

core::Result<std::shared_ptr<ssl::context>> make_server_tls_context(const TlsFiles& files) {
  if (auto r = tls_check_readable(files.cert_file, "certificate"); !r) {
    return r.error();
  }
  if (auto r = tls_check_readable(files.key_file, "private key"); !r) {
    return r.error();
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(files.cert_file.string(), ec);
  if (ec) {
    return core::Error(core::Errc::invalid_argument, "cannot load the TLS certificate chain " +
                                                         files.cert_file.string() + ": " +
                                                         tls_openssl_reason(ec));
  }
  ctx->use_private_key_file(files.key_file.string(), ssl::context::pem, ec);
  if (ec) {
    return core::Error(core::Errc::invalid_argument, "cannot load the TLS private key " +
                                                         files.key_file.string() + ": " +
                                                         tls_openssl_reason(ec));
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    ERR_clear_error();
    return core::Error(core::Errc::invalid_argument,
                       "the TLS private key " + files.key_file.string() +
                           " does not match the certificate " + files.cert_file.string());
  }
  return ctx;
}

}  // namespace edgecoder::net::detail
