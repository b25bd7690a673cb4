"""The pinyin table is read from pypinyin's data file without importing the package: the same
dictionary as the package's own module gives."""

from __future__ import annotations

from crossmatch.identity import names


def test_pinyin_dict_read_from_the_data_file_equals_the_packages():
    from pypinyin.pinyin_dict import pinyin_dict

    assert names._pinyin_dict() == pinyin_dict
    assert names.to_pinyin("王伟") == "wangwei"
