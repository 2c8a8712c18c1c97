#include "app/services.h"

#include "control/control.h"
#include "coordinator/coordinator.h"
#include "ide/service.h"
#include "inference/service.h"

namespace edgecoder::app {
namespace {

// One service's Mounted as the node's MountedService.
template <typename Mounted>
MountedService adopt(Mounted m) {
  MountedService out{std::move(m.state), std::move(m.ready_check), std::move(m.on_drain), {}};
  if constexpr (requires { m.on_stopped; }) out.on_stopped = std::move(m.on_stopped);
  return out;
}

}  // namespace

core::Result<MountedService> mount_service(core::Service service, const core::Config& config,
                                           boost::asio::io_context& io, net::Router& router,
                                           core::metrics::Registry& registry) {
  (void)config;
  (void)io;
  (void)router;
  (void)registry;
  switch (service) {
    case core::Service::coordinator: {
      auto mounted = coordinator::mount(config, io, router, registry);
      if (!mounted) return mounted.error();
      return adopt(std::move(*mounted));
    }
    case core::Service::control_plane: {
      auto mounted = control::mount(config, io, router, registry);
      if (!mounted) return mounted.error();
      return adopt(std::move(*mounted));
    }
    case core::Service::inference: {
      auto mounted = inference::mount(config, io, router, registry);
      if (!mounted) return mounted.error();
      return adopt(std::move(*mounted));
    }
    case core::Service::ide_provider: {
      auto mounted = ide::mount(config, io, router, registry);
      if (!mounted) return mounted.error();
      return adopt(std::move(*mounted));
    }
    // Services with routes of their own add a case here, e.g.
    //   case core::Service::inference: return inference::mount(config, io, router, registry);
    default:
      return MountedService{};
  }
}

}  // namespace edgecoder::app
