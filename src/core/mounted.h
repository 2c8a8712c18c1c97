// What a service's mount() hands the node: the state that must stay alive while the service
// serves, and the hooks the node (app/node.cpp) calls through its life. Every service returns
// this one type, so the node treats them alike.
#pragma once

#include <functional>
#include <memory>

#include "core/result.h"

namespace edgecoder::core {

struct Mounted {
  std::shared_ptr<void> state;                      // kept alive until the node has stopped
  std::function<core::Result<void>()> ready_check;  // empty = ready whenever not draining
  std::function<void()> on_drain;                   // called once when the node starts to stop
  // Called after every loop has stopped, before the loops are destroyed: waits for work the
  // service handed to other threads (store calls) so none completes into a destroyed loop.
  std::function<void()> on_stopped;
};

}  // namespace edgecoder::core
