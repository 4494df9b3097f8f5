from .lstm import lstm_backward, lstm_forward, lstm_infer, lstm_step  # noqa: F401
