#include "app/services.h"

#include "control/control.h"
#include "coordinator/coordinator.h"
#include "ide/service.h"
#include "inference/service.h"

namespace edgecoder::app {

core::Result<MountedService> mount_service(core::Service service, const core::Config& config,
                                           boost::asio::io_context& io, net::Router& router,
                                           core::metrics::Registry& registry) {
  switch (service) {
    case core::Service::coordinator:
      return coordinator::mount(config, io, router, registry);
    case core::Service::control_plane:
      return control::mount(config, io, router, registry);
    case core::Service::inference:
      return inference::mount(config, io, router, registry);
    case core::Service::ide_provider:
      return ide::mount(config, io, router, registry);
    // A service with routes of its own adds a case here.
    default:
      return MountedService{};
  }
}

}  // namespace edgecoder::app
