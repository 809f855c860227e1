"""Stand-in for `attrdict` (imported by modeling_deepseek_vl_v2.py, never used on the inference path)."""


class AttrDict(dict):
    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError as e:
            raise AttributeError(k) from e

    def __setattr__(self, k, v):
        self[k] = v
