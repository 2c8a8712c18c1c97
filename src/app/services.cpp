#include "app/services.h"

namespace edgecoder::app {

core::Result<MountedService> mount_service(core::Service service, const core::Config& config,
                                           boost::asio::io_context& io, net::Router& router,
                                           core::metrics::Registry& registry) {
  (void)config;
  (void)io;
  (void)router;
  (void)registry;
  switch (service) {
    // Services with routes of their own add a case here, e.g.
    //   case core::Service::inference: return inference::mount(config, io, router, registry);
    default:
      return MountedService{};
  }
}

}  // namespace edgecoder::app
