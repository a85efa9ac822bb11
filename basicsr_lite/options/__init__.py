from basicsr_lite.options.parse import (apply_overrides, dict2str, load_option_file, parse_options,
                                        validate_options)

__all__ = ['apply_overrides', 'dict2str', 'load_option_file', 'parse_options', 'validate_options']
