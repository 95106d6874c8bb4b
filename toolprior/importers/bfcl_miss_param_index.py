"""Which turn of each BFCL v4 multi_turn_miss_param record is the one missing a parameter.

BFCL keeps that fact out of the data file: the miss-param turn is the first turn whose ground truth is empty
(no call is correct; the model should ask), and the ground truth lives in BFCL's separate
`possible_answer/BFCL_v4_multi_turn_miss_param.json`. When that file is not at hand, the importer falls back on
this index, read from it (github.com/ShishirPatil/gorilla, berkeley-function-call-leaderboard/bfcl_eval/data/
possible_answer/, commit 76951f3, Apache-2.0) and checked against the data file of commit 6ea5797.

One entry per record `multi_turn_miss_param_<n>`, in order of n: `turns:miss_turn:crc32`, where crc32 is the
CRC-32 (hex) of the miss-param turn's text (its messages' contents joined), so a record that BFCL has since
edited is caught rather than cut at the wrong turn.
"""

from __future__ import annotations

import zlib

_INDEX = (
    "5:3:2df199d5 5:3:cbb0e824 6:0:f7d60873 3:1:9cc9593f 4:2:c69a4d36 5:3:37dd6b48 6:3:440e6491 4:1:2f33f377 "
    "5:3:86c1801e 4:1:a3742999 6:4:758103d5 3:0:b6a90cac 4:2:459dc323 3:0:ae0344e8 5:2:f83229d9 6:1:cca0af08 "
    "4:0:30cc6516 4:2:aaa5a895 4:1:16a9c0ae 4:2:a3a5137e 3:0:7ace458e 4:1:f5d2c99c 5:0:063880c3 4:2:4aa344f0 "
    "5:0:e7b42037 5:2:36a8c0c4 4:1:7bbd9d85 4:2:994203d3 4:0:5f23ea1b 4:1:f8e06bf7 3:1:9dd2ec09 3:1:a038528d "
    "3:0:1f2a8a1d 6:3:3f020996 3:1:5c91e0a6 4:1:b8997fc5 4:2:e3e0de94 4:1:b736cfea 3:0:5d5d3ec9 5:0:117e86ee "
    "5:1:cf181236 3:0:4ee02e8d 4:0:e22198ef 5:1:d71b93b3 4:2:f81c933a 3:1:e0e664d9 2:0:3156cafd 4:2:325d163e "
    "4:2:e00b35f6 5:2:95fb1ffb 2:0:409daf6a 5:3:28d4301c 5:1:3a3bb7ae 5:3:f54b180a 4:0:97f098e1 6:0:7c669a94 "
    "4:0:225a04b7 3:0:27803cdb 5:0:e5aa6715 6:1:e3ecc877 6:3:a90b1d29 5:3:84f559bc 5:0:226d4090 4:2:ad6fdf02 "
    "3:1:f42d59e6 3:0:66aeee15 5:3:a5cd8c3e 5:0:75c5ab8b 6:4:f5e6d46b 3:1:9b2c7a65 3:1:ea9ff792 6:0:484f34e3 "
    "6:3:4078f2d4 4:2:017c63e2 3:1:fef408dd 5:3:a1d859c3 3:1:2e9ea0c1 4:0:9713162f 3:0:b1acc498 4:2:8a025fae "
    "6:0:36d62510 5:2:3f37aecb 4:2:23142c7c 4:0:8a16ba5e 3:0:0cc8e4db 3:0:3a37ae1f 4:2:1224e67b 5:0:d14b8d3e "
    "4:2:d1befb2d 5:3:f3cc4a00 5:2:c5b33014 3:0:42b4a9bc 6:0:7ff5892c 4:2:80d7b494 4:0:4bf24901 6:3:15bd03cc "
    "3:1:e13db73c 7:3:d85cc677 4:2:21270159 5:0:ec6ee02f 3:0:092f90f8 4:1:4875e182 6:0:258bb73d 6:0:b4cff074 "
    "3:1:b1fbdabd 3:1:cf6a2ced 5:0:8694f270 6:1:39022e57 6:1:8ccd4286 8:2:c32d7e1e 7:1:68f31954 5:0:23729e6d "
    "5:0:30a2853a 3:1:e8e2ebb8 6:1:6e886fa5 4:1:b5e0fa7a 7:3:8b91b8f0 7:0:b50af85c 6:0:67f679e5 5:1:42f27ff1 "
    "4:0:a4e7243b 5:0:4c6d14e8 5:0:e6b03953 5:0:9c1361f9 4:0:8fb312ca 6:0:d1d1a655 5:1:1da232a3 5:0:9b6cacae "
    "5:1:d6695676 5:0:a87e099a 6:0:ecc44247 8:5:3b21279c 3:0:7216fe4a 3:0:c98e8de1 4:0:04565ff8 5:0:5db86aed "
    "5:0:0bb23b08 5:3:07fcde32 6:0:daabb5a1 3:1:3175b3f4 5:0:285f7238 6:0:e4c9f221 6:0:c8041cff 5:3:9ce2b2bc "
    "3:1:5a9a61d4 6:0:0650bbad 5:2:8689156b 3:0:b7ca18dc 6:0:e14a6962 6:0:1002d702 3:1:1070190c 4:1:c9308b58 "
    "4:1:7bc8e74c 6:1:f803b9bb 6:0:ef1af673 3:1:22352afb 6:0:649aa715 4:2:408dd48b 4:0:35782823 4:2:054ae16a "
    "4:1:bed3d7ed 4:0:f34be31f 7:2:e7a0fc5d 3:1:73699909 5:3:cdd7f263 6:4:8d6296ce 6:1:149b0a26 6:1:3971c2b1 "
    "6:0:239ab8a3 3:0:4cc7c0a2 7:0:409acd05 4:1:f81c6dba 5:2:7c341c9e 5:0:cd62bdea 6:4:3a0bdf81 3:1:0fe3d993 "
    "3:0:7d884a48 3:0:e6b3486c 6:3:5ccb49e7 5:3:5600fc44 7:1:ad004a57 6:4:641f0c71 3:1:4f9e1099 7:5:63797338 "
    "7:2:046645b0 4:1:4fb4642e 7:5:a40bd8c0 5:3:a75c7f6e 7:1:c5b4b974 4:2:e0ad0dae 6:0:56505ffa 6:3:1fd4ce8e "
    "6:0:81f7ecd0 5:2:57f2f95d 7:2:0e05fcaf 5:0:6caa179d 6:4:0ec048c2 4:0:5314f9ac 2:0:8b336877 6:0:744bf2d7 "
)


def _parse() -> dict[int, tuple[int, int, int]]:
    out: dict[int, tuple[int, int, int]] = {}
    for n, entry in enumerate(_INDEX.split()):
        turns, miss, crc = entry.split(":")
        out[n] = (int(turns), int(miss), int(crc, 16))
    return out


MISS_PARAM_INDEX: dict[int, tuple[int, int, int]] = _parse()


def text_crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))
