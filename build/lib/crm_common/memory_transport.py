"""Make kombu's in-process ``memory://`` transport fit for nameko (embedded mode).

Two adjustments, both confined to the memory transport:
- nameko's RPC responder reads ``content_type`` from the message properties,
  which kombu's virtual transports keep only as a top-level field;
- the virtual transport polls its queues every second; lowered to 1 ms.
"""
from kombu.transport import memory

_installed = False


def install(polling_interval: float = 0.001) -> None:
    global _installed
    if _installed:
        return
    original_prepare = memory.Channel.prepare_message

    def prepare_message(self, body, priority=None, content_type=None, content_encoding=None,
                        headers=None, properties=None):
        message = original_prepare(self, body, priority, content_type, content_encoding, headers, properties)
        message["properties"].setdefault("content_type", content_type)
        message["properties"].setdefault("content_encoding", content_encoding)
        return message

    memory.Channel.prepare_message = prepare_message
    memory.Transport.polling_interval = polling_interval
    _installed = True


def reset() -> None:
    """Forget every queue, exchange and binding (between tests)."""
    memory.Transport.global_state.clear()
    memory.Channel.queues.clear()
