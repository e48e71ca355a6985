/*
 * Unit tests for daemon/pkey.c: reading PEM private and public keys
 * (PKCS#1 and PKCS#8, SPKI and PKCS#1 public) and every refusal with its
 * message (encrypted, not RSA, RSA-PSS, too small, too large, a public
 * key where a private one is needed and the reverse, two keys, garbage),
 * DER and PEM forms checked against what openssl(1) wrote, generation,
 * and OpenSSL's secure heap holding a loaded key's numbers.
 *
 * The keys were made once with openssl(1) 3.0:
 *   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out a.pem
 *   openssl pkey -in a.pem -traditional -out a1.pem
 *   openssl pkey -in a.pem -pubout -out a_pub.pem
 *   openssl rsa -in a.pem -RSAPublicKey_out -out a_pub1.pem
 *   openssl pkey -in a.pem -aes256 -passout pass:secret -out a_enc8.pem
 *   openssl pkey -in a.pem -traditional -aes256 -passout pass:secret \
 *       -out a_enc1.pem
 *   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out b.pem
 *   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024
 *   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:8192
 *   openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256
 *   openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048
 * None of them is used anywhere but in these tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cb_error.h"
#include "pkey.h"
#include "secbuf.h"

#define MSG_ENCRYPTED	"the key is encrypted; import it unencrypted " \
			"(openssl pkey -in KEY -out PLAIN)"

static const char KEY_A_PKCS8[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCO8OiOLQLpViB0\n"
    "t33s1rrJotAHwMbfQzbTWh1OQ+fT2qLZSG3yM28uwtcuN9RsKuP1LGkXFfwnY/QJ\n"
    "D952fYNFmDGoSipAOkXadz3atj0j7BfxgrKdTc7tutX+MSt5U1GLeIkQKUE3CDfI\n"
    "uKJke25QioY8avDHis1EIfLf41wL2sIJiq9T7Ig43P1dZ7gnYWxnlqq+FHXTlc2k\n"
    "rzQKEHH11FKUj/T8brWCg9wZAg5rgLf5Zkg/iptZMjCLNcMu6Y4kxeOzgGq1TXAc\n"
    "njmpAXBJNb0Sckrfqy4+j9405Ov9kJlilPODUIK+9gZqJOo+GBsM8EBHt2VwSsc3\n"
    "Ui8mPM/DAgMBAAECggEAPf+ExsIELMPUAPvjbPn3+2QYWfyF5amIGqTP6DXw1AVV\n"
    "M+xD79TaSQxue5fwlVgHFrzD+iTpgQZL/zA4W+l1qhZol2dPqxr7WFX26Km5nB6X\n"
    "hgObyDnK4nbywTV/dzipulY2EOHr7NwuIevfV7jnsJxcu9DgjZQJEx+scepx7pu2\n"
    "MQ2hhD40VIRZVmape6oLO9MMY79otc2SQramZ5WeBSPVUAgqskBBHcXS58wliBw0\n"
    "nii3Z33Nfc8QqdQFSb0cjMCkIPOhHkBfFUkNVLYBCFZOMYxHyumco1bN96CCFVc/\n"
    "9x+2xW6LWWbq3f4WVbOCqsx9w0SNM4Ai/ugix9rQMQKBgQDBVRl6RUs5B9QrsEIN\n"
    "yHorizX7w3NiQsvhK4dNZUgFSqXekjKNH82XtTT/C47UcGeCHPGjVoAq20yrRdPi\n"
    "ali4hcSq4H7tccUcwhxPwXwPkdyCSujoKCvtt1yuzW+6VzgYHwU9TpmkCcqCCwT1\n"
    "b7odmXdhG83NnO+387OMLZadEwKBgQC9Rkl1akcVA+rTbP9WR12slTEUk9h2tMmn\n"
    "KRkMixauYO2moz5jEkYnC+C1ov6GF71rUUYgrGIuNgz7Cfau3P7UxEraAPYKxGGl\n"
    "dbaf740krdy4rhvEGx0AK/TIy38joPmjMxw83w0Kk46kx81M/8+8qwrQO5WnJ0HN\n"
    "ZfxBu83IkQKBgHUQVVv/B1xiDCvkDysPYEJrieWHZJ9z+MXAOK45jJF/sM4DUk63\n"
    "miKpW4yvb+3cniBf7ETOBM9ueI8gufrYEB6zCPG6+8BE6mjOdJwqeTdoR9AxEbQ5\n"
    "Vtga9ij2Rhfb5iBc8Cw+IrP8Jb32dCs1Wsm/elS3pDdDNrf4/Zf8pr03AoGALk3g\n"
    "sMHkS+bebwTuXowtBYimLjORNFE8OBHc1+27CcQav7aWD6Sr1ueX/Le4btOl+ngy\n"
    "oNGrX0TH3i5s1BCqoyC2cyjjCHVMsi7fE7eGHyANrHyjvFEpwh3+z5TBMNUz3VIm\n"
    "qVmkFh9NOVDMD/dROgXaKmE5VmBLP9WgZfBtApECgYAmWBJ+g0b6M/NlvwjPDIS0\n"
    "bAWxQf9uDQeU0u69epH35XtTlzC86BTYcnPnagS304eBzPxgisiJNHPol4OJ3G4q\n"
    "H2ZJP8K2XMFlXMoeb0u9K5zki9Yp4Jj1nKK+AGO1VMXsvQk8RFoqdxNGlESXspeh\n"
    "SAhpVq3FafwI95Zhd6c95A==\n"
    "-----END PRIVATE KEY-----\n";

static const char KEY_A_PKCS1[] =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEogIBAAKCAQEAjvDoji0C6VYgdLd97Na6yaLQB8DG30M201odTkPn09qi2Uht\n"
    "8jNvLsLXLjfUbCrj9SxpFxX8J2P0CQ/edn2DRZgxqEoqQDpF2nc92rY9I+wX8YKy\n"
    "nU3O7brV/jEreVNRi3iJEClBNwg3yLiiZHtuUIqGPGrwx4rNRCHy3+NcC9rCCYqv\n"
    "U+yIONz9XWe4J2FsZ5aqvhR105XNpK80ChBx9dRSlI/0/G61goPcGQIOa4C3+WZI\n"
    "P4qbWTIwizXDLumOJMXjs4BqtU1wHJ45qQFwSTW9EnJK36suPo/eNOTr/ZCZYpTz\n"
    "g1CCvvYGaiTqPhgbDPBAR7dlcErHN1IvJjzPwwIDAQABAoIBAD3/hMbCBCzD1AD7\n"
    "42z59/tkGFn8heWpiBqkz+g18NQFVTPsQ+/U2kkMbnuX8JVYBxa8w/ok6YEGS/8w\n"
    "OFvpdaoWaJdnT6sa+1hV9uipuZwel4YDm8g5yuJ28sE1f3c4qbpWNhDh6+zcLiHr\n"
    "31e457CcXLvQ4I2UCRMfrHHqce6btjENoYQ+NFSEWVZmqXuqCzvTDGO/aLXNkkK2\n"
    "pmeVngUj1VAIKrJAQR3F0ufMJYgcNJ4ot2d9zX3PEKnUBUm9HIzApCDzoR5AXxVJ\n"
    "DVS2AQhWTjGMR8rpnKNWzfegghVXP/cftsVui1lm6t3+FlWzgqrMfcNEjTOAIv7o\n"
    "Isfa0DECgYEAwVUZekVLOQfUK7BCDch6K4s1+8NzYkLL4SuHTWVIBUql3pIyjR/N\n"
    "l7U0/wuO1HBnghzxo1aAKttMq0XT4mpYuIXEquB+7XHFHMIcT8F8D5Hcgkro6Cgr\n"
    "7bdcrs1vulc4GB8FPU6ZpAnKggsE9W+6HZl3YRvNzZzvt/OzjC2WnRMCgYEAvUZJ\n"
    "dWpHFQPq02z/VkddrJUxFJPYdrTJpykZDIsWrmDtpqM+YxJGJwvgtaL+hhe9a1FG\n"
    "IKxiLjYM+wn2rtz+1MRK2gD2CsRhpXW2n++NJK3cuK4bxBsdACv0yMt/I6D5ozMc\n"
    "PN8NCpOOpMfNTP/PvKsK0DuVpydBzWX8QbvNyJECgYB1EFVb/wdcYgwr5A8rD2BC\n"
    "a4nlh2Sfc/jFwDiuOYyRf7DOA1JOt5oiqVuMr2/t3J4gX+xEzgTPbniPILn62BAe\n"
    "swjxuvvAROpoznScKnk3aEfQMRG0OVbYGvYo9kYX2+YgXPAsPiKz/CW99nQrNVrJ\n"
    "v3pUt6Q3Qza3+P2X/Ka9NwKBgC5N4LDB5Evm3m8E7l6MLQWIpi4zkTRRPDgR3Nft\n"
    "uwnEGr+2lg+kq9bnl/y3uG7Tpfp4MqDRq19Ex94ubNQQqqMgtnMo4wh1TLIu3xO3\n"
    "hh8gDax8o7xRKcId/s+UwTDVM91SJqlZpBYfTTlQzA/3UToF2iphOVZgSz/VoGXw\n"
    "bQKRAoGAJlgSfoNG+jPzZb8IzwyEtGwFsUH/bg0HlNLuvXqR9+V7U5cwvOgU2HJz\n"
    "52oEt9OHgcz8YIrIiTRz6JeDidxuKh9mST/CtlzBZVzKHm9LvSuc5IvWKeCY9Zyi\n"
    "vgBjtVTF7L0JPERaKncTRpREl7KXoUgIaVatxWn8CPeWYXenPeQ=\n"
    "-----END RSA PRIVATE KEY-----\n";

static const char KEY_A_SPKI[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAjvDoji0C6VYgdLd97Na6\n"
    "yaLQB8DG30M201odTkPn09qi2Uht8jNvLsLXLjfUbCrj9SxpFxX8J2P0CQ/edn2D\n"
    "RZgxqEoqQDpF2nc92rY9I+wX8YKynU3O7brV/jEreVNRi3iJEClBNwg3yLiiZHtu\n"
    "UIqGPGrwx4rNRCHy3+NcC9rCCYqvU+yIONz9XWe4J2FsZ5aqvhR105XNpK80ChBx\n"
    "9dRSlI/0/G61goPcGQIOa4C3+WZIP4qbWTIwizXDLumOJMXjs4BqtU1wHJ45qQFw\n"
    "STW9EnJK36suPo/eNOTr/ZCZYpTzg1CCvvYGaiTqPhgbDPBAR7dlcErHN1IvJjzP\n"
    "wwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char KEY_A_PUB_PKCS1[] =
    "-----BEGIN RSA PUBLIC KEY-----\n"
    "MIIBCgKCAQEAjvDoji0C6VYgdLd97Na6yaLQB8DG30M201odTkPn09qi2Uht8jNv\n"
    "LsLXLjfUbCrj9SxpFxX8J2P0CQ/edn2DRZgxqEoqQDpF2nc92rY9I+wX8YKynU3O\n"
    "7brV/jEreVNRi3iJEClBNwg3yLiiZHtuUIqGPGrwx4rNRCHy3+NcC9rCCYqvU+yI\n"
    "ONz9XWe4J2FsZ5aqvhR105XNpK80ChBx9dRSlI/0/G61goPcGQIOa4C3+WZIP4qb\n"
    "WTIwizXDLumOJMXjs4BqtU1wHJ45qQFwSTW9EnJK36suPo/eNOTr/ZCZYpTzg1CC\n"
    "vvYGaiTqPhgbDPBAR7dlcErHN1IvJjzPwwIDAQAB\n"
    "-----END RSA PUBLIC KEY-----\n";

static const char KEY_A_ENC_PKCS8[] =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIIFLTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQIGo2U5dVX95kCAggA\n"
    "MAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBD3kxwcGlkbs2fT1CBaYyjmBIIE\n"
    "0EykZi22JQYyryU+UX4Pswfk9mDoMTWMaUPNGW50OVB0yWx4dXEv4reEqVwJfBKV\n"
    "QN8MtIYlNraG/waj01ehbII7xluIaFutCb0EV5Xe3tjtbFp9rUDwywBZt/X3WsVL\n"
    "XL2PPAyBEjFdWd5rDYdQYKNC38CYSmvBbiqKPBu1LvQzlRlacP+l1jtb7BY7ccI5\n"
    "/f9yXbCVJVHFNZewWzE97Ifk+sFviD4NhjBanGQDGMyH5CCYnu8Xwf+pvqIK8TE1\n"
    "RKSnUbjpyh+COY4AJzUj/4yyMSfZZUzNoWryzKAxWoAkp9B/ndlFQ3sjGq1ZsWJe\n"
    "wk0wasV7jnM3FD86zXjdVocDSLjfSK5/UalmrASNnxYUe8GHb3463oN5kReiP8+y\n"
    "Prf7MNX2M1DxHBiXXpRb3PFEYcFfSiZ8viF9orrYLryU3rux9Bu5gVrzV10UexRP\n"
    "vgxcH2PjgoDJGA4p4fC1crI5fs/KRyLsdnmSkhpGKPdY8KqdKXqERMf1oZfxgGg+\n"
    "MKyjsTn807sYnAUa6kiw0a9s8Wf00D5OwkupDOyZwtBDj8rm0imDw5NGR1ooTdIF\n"
    "x12p7Sr9aaVi/0J9PCvuxWWIP+Eu+lCZ4dAPPOVJc7bkIlUHM+3MJHg4F3yhb43c\n"
    "HJEZqDl9PQalou7PQmrC66f3aF9Fs4IptwcPcCKNBpMVuKBijCn4DgxAqMu7r5Wh\n"
    "BemMkhZCdBBeLUGdKdMSzLWueIMtf3EtaEWdnAWv50AAkow/IitNMKfDMpZ4sEU1\n"
    "SfFXBUQnOmHnCp19or6d90I/qOEKVbCwQ4RUB2mzNwsw1ug3Sabaut0kpzvotC87\n"
    "9Y+YwDsUj+m/hpcAE8XXLQIFpLpgIiPE63gTG7BDsim+e9wuJMCKp+Zw0f7aEfYT\n"
    "lYhp9j3FUhzlVu/UAaLp8ke1PjeUyzl6gfYbrNe/JIlpzBg4mVmkDAWnF2d/pNnK\n"
    "KWqN1eL2G5XoAwraQXtyKFcdGVh+guwE+ghrb8q85RhpXtuUhv9SzXENSRyTe3yL\n"
    "ED9dS6kwsYYRdN7pLyfcvLKBW1DIHB1GPuha+FtqG5uJ2jQUZdGBLHgqi4wML9HK\n"
    "D5vArEy8cySxlJX98q4+3tWeb+lxnSHkAP9kPUXohBtJdwSPmUj4QHUUAO38WtQM\n"
    "6TrY7KtsXmLX5po5D/0OQ7ewbjSE92kEiqOaJhPsC8P2DXy3Xz2caaC7wdJqoWKI\n"
    "55ZN25ZkiZqKmh9cqof2FI0/HCuCchXdqAFWsJEXTqOWViv2l3awl7uua2qBxLQ8\n"
    "Yeo0A8dpAcjb69v7nQ7g1A8eUGXVq62fdCLkQGxwETLBa41UKCro4EDqmN+/Ht3P\n"
    "L7TSUWiUHDo6CP3yQwZdIEPh6v0g8VTo2m0AyqrBTh9DrCIdY9HSrG6pW2ZveCJY\n"
    "S2ehAB3aaz15n+P1oU5gwcW0UqIsW0zbemqPTavZn5NoL9XyEnAU4T5vpgh5/41N\n"
    "dKiUCoxXYhdHQTxuzCMyV9ZXYYSVSlcM3gaH4ev2Fs0tRS25PKJWrPmAiMmRiEba\n"
    "/IFnGjGzKIf5Wn+teHz6Gq+d+r6ruwV0CPAOOrV6x82cYhU3OslpxYTL5XgYpA38\n"
    "mhokJoUBDGriZTCJ65H3OS55kjxcdtWqBOmg95Dc3s6W\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";

static const char KEY_A_ENC_PKCS1[] =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "Proc-Type: 4,ENCRYPTED\n"
    "DEK-Info: AES-256-CBC,675E25F36FFC94805F078A70F9C6F6B4\n"
    "\n"
    "jIU8Zmvw2b35j5g6NLOecwlU7Zr9HjCV59ybq7NIFEPl3HjesfX2HPkgUj6nVsPs\n"
    "wtaZnX3xSjmvwRYQ6hPlPyxcD2NBHg/7yFhiS1mw3fZe7Wk+CepnScm3VOo/YSSJ\n"
    "yQt9DNIiQa7icJ2nsUHAUfJZiTKEj9gaNszuu7eLlCjBaLXKVJzVaUBhP2KkMJFF\n"
    "zVkn1AmVr65ytTVcB5Mh4+G4tSN7QYofCzjr1DEM+BoxciRYrC+ECsWWvksT8TSH\n"
    "YXLMEdAFfgylIRsO2VeM5izADNgJo4gpVHuTJODrQfDrJg/9PogriOId/K17QZWK\n"
    "ZobSyRFkdv4WMEYkruXz1U8wWuScDDq3IIbpfTP3FkO2YbQJtfCcoGdpNq4TcLmI\n"
    "XdS/fG16eGvyWNYZmDvMvy+nzD5Z2PjS+oYe2hYUZ364dyoNLGIWF18oPubAX2PF\n"
    "5/lAJLnpomBQ0etPBZFTC1VJCi+jy/9VA5AwV57BHXOA74GXxivTBIYrepCg1iLJ\n"
    "RdFGSxeRihuQcr3aaN0PkWc8CqTwXaBd1+GoqLOmmAQQESCn0x+D5fsdxiYzEUVt\n"
    "jEQTDtcY1C+2KPIF7rPoGQS0k4jMsLs3Xu6OcMmi621+Lm1iXf0hBYa0gteYSW9o\n"
    "iHVxR7xYZnEPPMnXOEwB7bo7eOucYUN+w/JvVZWzEuyDAuEmCpUidu7ayfZkf47R\n"
    "EQGRqkgRFrArWzmAEtApuZjaROGinTPsFzrM10RLpn3pbCtm7HC811uB/8zlGbmW\n"
    "JAChubSIpiOETnFJUGxAQiXRW1pQ3aNGTOvh1WzNm1ItVLQZGRroymKGnOcXKhea\n"
    "FGSmKU64QhbYZbFy7Rwqxib26sSRAJAKSYNnYp19zLSeLtCfcoP64lJxyvQMlBjs\n"
    "bQUz3sn83gKYGnCVJkf3UYuC/grpoLGrNIJUiHgq97WPnALaKbTibFkdIzy4o2sX\n"
    "bTS8esgBf4SeThfB8PMNufaVhqZvDfEfs0KJzyWSJr6A8fuPbNpYlAgH5C6E4DWm\n"
    "CZDHft5/ffOu2+1viRmUo71Jj0fxR1lKij0gS8q5L3IsbClcbNOqJ621MQVJn7Au\n"
    "cGU0PjN0napjpviAhCOX/sz9HlVMh5zwaD0i8Hgp+IKhqPDu0P12xkN+quE1pNec\n"
    "9er4c+4gZ+cPn7gvD4TUKKKwSEz/yw/lxdB0TP0eycDxmOUdS2cwBDQzcKR3746l\n"
    "wV2foFW3HsMHfJ8VZOt1uZylGKPd0kicMvLos1QDkBtfWTdP/R3C4NeY2HeT9mLv\n"
    "APB1BRUmpxBSyWRzo21dNnmQozaRXLTyapSTcIMJlh8xxMV3+DPeyXgomJJz9oft\n"
    "TWwZOwSanxyVW11vXenk6gUDb3UTjNTNiH+HzkruX1mTV3n+cXcG3o1JzxAAIyrv\n"
    "0dLpUyQhY10cpBbHRnFrKb8vaHmXaRDsq1klr20GK59bACYqgC5tylwc3h5kszYY\n"
    "oKH1fvtLmy+In7P9gDA8WK+sb4pUWrS5262qEzjNxN30x/ri78pESPh9zkSIhxYn\n"
    "JDaZy8Ihy3458Sh9sS/1kGlbbPrEL8g90QpZ77Z2t/R2HYXlGWKfdfaxNMn/l9lL\n"
    "-----END RSA PRIVATE KEY-----\n";

static const char KEY_B_PKCS8[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDUNqiLriis9hc4\n"
    "7fX0Id2nigsIHVcgSRx4GzPplA2rKPZDUBL3/citvEM+TKzbBziwNUF33U9jb6cU\n"
    "HPFosBDshOzJiT/ui1LjeHSOcLcu98qq5aTSDP3SafrsnhidrOBwthNVBE6qN5Nx\n"
    "VDMpc8rslDasIyBItWMJsxza1JgrOL4G4pvvm74Ro/rpXpbMs0egXTTwIbCBHaq/\n"
    "on4R0UTuAzBzLRkj2iKwQFuTC3d8oxOXInzNa/p4aYf7ITpLIZw3eT1SS3O/UHwT\n"
    "3Tn80kzsVmYDY9zHHcHykcTAhcVe83snINymdoLPAg0wQYC2HtZ3oYcNLfM3UKwt\n"
    "1QrGDmalAgMBAAECggEAMavUghNC7o8QavEZ4Wl+2/z97YmOj95FBWDaowjWNTKa\n"
    "h7FpqzWx/+Zht+aTDBZR4L6qYv/AWgYzjYvjvoz9fRr04IxZVEC0p00VvRRpcBss\n"
    "SxmC3W6Qh6xqQPGVUey5wPABMORX9FQbVQqwCfsSK5Nag6qaHyKjuoy7y4W4016g\n"
    "yETaR1GzSB4PQHW0Q4YNisAv5TNlyrrnnqTJjuV2/Nut+jkJ7LywE2FwKhoDC6W6\n"
    "qJLmAkzk1FfVCxrzFmkPO69uWHS9uObjIQ1hVcnwOiCG3Q9GFqS68lzcfJmtKAic\n"
    "N66AzD5JhPWZ6guldp6pQyFUFXvQVFCM0VM+7y5lqQKBgQDvBuoFXbm8TwApslLk\n"
    "zp/bmDM9G1X9bNLBqoJbGrlaR717ynKQ8pZrGq8j80iM+O7L/SB8ANi6/PfMV5EJ\n"
    "MK17+AymYQ0EUqXOu2Tov18tXWcL2Ot97HnuE8IoUR4rVSjHODQUshGFTHJIeru1\n"
    "xrrf82kSDfzCUqB15O5GSLJUXQKBgQDjSFKQd5+iZV2MMLvi5zYWYn7xwRb/uVk+\n"
    "j6JpzjfjzUADcIiQTGxnLmfw977KoMvcHxt7LZAhE178Mia+02p058Bu12RGGdfb\n"
    "ZRHdAkztRBUBlLy3bBWwUEfK+N/394erK8n7Owx5LnLdoIGkKbPpeCyJqRnnsudk\n"
    "E44XloQ26QKBgCBwMcY0qAY0OnNuLe27VNp6V0nNsefIovmBaFtwzwK/hamNGest\n"
    "4Nf8MRSR6aCoD9BDM+tgOgl2VzK2F4rFvmV6jkzuEtQpWzMpH1Ku1f3UFS34bE0U\n"
    "kJ+MsubBy3RaBES1DexZFiOe8kt/zIWoyKen4vR+TXUZvYkCXovPRdRJAoGAE+uS\n"
    "0ParFyCrQk5DKW/6XZvkZGv4CBHGsKUGJx/b5itnIOYMEhmgpqp6kbQlFL1jILfZ\n"
    "QMKNj1iTSqdanf8JpZVqWEyojTxWnvQMzMIW2/TLoofWwnzGqd1fbXrCpokbavU7\n"
    "jrluLnDTwHkA49KD4kKWJLqdeqFDhpHwMkEO9YECgYEAqRGIcyb3R2Ux8rcdtFC+\n"
    "IY8/Lgi4viBymHZQ11pgdaBxCzHYQ7LEQYqrYG6gh5zRbhw/3w7UOuJURUJ5kx/r\n"
    "pQ4gzdmLUx9hNHC3F/EUvPWwAPqJKbcAAiYblgS/crZjYKO3qZybcRWNol1qwwa8\n"
    "r5VtXPpjkENrjEZwVNns42E=\n"
    "-----END PRIVATE KEY-----\n";

static const char KEY_RSA1024[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAKdkvm+Ja+FyIiP8\n"
    "qeZTesY3VTOwm/g54es6+I2gmyu/vuDeVYwn43C4viY9dcbEw5HfnKhKhOVWUUBh\n"
    "bMIr+1TMducNft69L4ct9J+NdKH3tweKJryxNOtKMQ7za34SUx2d8MqlYHA7lPMH\n"
    "WPpPme7hs9AxySdB91FqT4Ru4cMTAgMBAAECgYEAjZqbvp7xs/VpDChhUYatBaEp\n"
    "YmC0kHfmtaddO/HxUkESqAdtNvNHY8Pkl1TGnS82geA4FeV0Js2uTlgcOOYb5XIR\n"
    "wPdsWZx/u2KEw+vQobe8E7L0UyFjdywObN/vmWE1XUAJTN62ZF69/DHhSyMyHwRp\n"
    "BvOMjmzDKwEOYZhSO4ECQQDQzgCtSNpAyXRcqQwI3ghmgoNjVWs0YhEAwkcgTwAD\n"
    "VEILZ8414plu8ylCcuu9+a35WcSXvBItezUPZKiWhBfVAkEAzTqUns0ZzAABqqeH\n"
    "ePfEArKUVhCbV8dJoPToj9JFruGbkOEkJZhGQ1lVZ/eUpLM7HVyUJqG5INDRMq60\n"
    "89ULRwJAT3uLUGsiAXVuIPOMjDeQtQzLXN2gIGGQHVzW3FqWI65IMbVDDsoCI/TV\n"
    "6OB8EmXfrsJYDnZd6Qg0a3aioiEIPQJAMg9iBUJeUoaF4Yyv3PAC3e2VhVDTs5um\n"
    "+B4FRF+0I65gdfyVBp6YNQFrdcrMdUhK2SSl9q5oK/sDrGs1NGz5LQJBAMe0eCxo\n"
    "px744dcHTkj8oM8+CkAwxEJuhDnNlwyD58gTPZc19rQRXFAZqfzSJIyErwr6zoh6\n"
    "Ec/I4twnMcKCHGw=\n"
    "-----END PRIVATE KEY-----\n";

static const char KEY_RSA8192[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIISQwIBADANBgkqhkiG9w0BAQEFAASCEi0wghIpAgEAAoIEAQDpDVaINOj2wxB9\n"
    "bHUWDXu9QVkyb1Wwhhjbvk/JSs6+uiD0ae2eertTgaRvTDV0DfHO/Ne8oykX9i1x\n"
    "aAfvONeGKmU2BBCXfcwsCbFv3JCuA86seSHtle1572jVxrJzS9DtSxdl3tSlOncU\n"
    "KTYf2SFHEJ63nRh+Ew5k/ftMAn1kSHIR69s3zaxnibo+LAalNcvKJR/ijfjD1QsF\n"
    "dVe+7kQwnDhFYc5A5HMdIL7ejVlFdkI8gNmnghVhfVFCAQmSpMgy9LSuerjmKrSM\n"
    "e1uZRWpxn7MUl4uq+pKZWSroaIzWLXeKgxYOyC8Xll5G0A6P1ibUInuj1BC0jMMB\n"
    "SgWZANn75OqOSxU3vywcZHkcDMHSf3N5zAY0kaJJ8NYUNeLNXhrMd2xdzUMHiptH\n"
    "At3v5IhJUtTD4JTWANX2Kz2jzJ5bjLI1O2HZyzPv872dYUxNl77ZVCbcgYZmy2cu\n"
    "QWhVv4Amkf3zORzoenB3iwezgHPentpSRURZKi5S+kPd7DRVMj9F0iC9I4PC8rTf\n"
    "pVVIRZWihFnl6qU2hkIw8wBZEsRFC79Fna6oqmaIu7/eIKIi5XeRxsv8ao57pDxT\n"
    "WbbcHjcH5Uy7IPZooAPUrNrXIU1v+5WCX7t8nfE3GdpQ5kQknFTIXI3ZYqSjwFow\n"
    "TfJj5ChMveUYUKw7VvnbfDpclvs+k/dJnXkE6aAbwbisgxJMv887/267oZ/4DbCq\n"
    "NKGPw30/QPSCf0ltY453MxmJQzoKaxMpzbYYvG7bN1zRvbmwDw76QRAJR+IFt8zN\n"
    "7O3Q1Uv9xVL3GC2dmX0Ok39ny3bWPybI9jWrXqjEafgijotIs8kR5xkYjzo1b29z\n"
    "2/y99apt7k63iIMTAF/zevJW2Jq0kKxA5l8jssRnPjtRNRgVLXTUsT/iI5TjtZX2\n"
    "Li7lXj2UZdF+odoKTMqFVEmAt8r4FjHkcSQBET1EzRR2S0OTmTH1Zb7yU6kFAEYH\n"
    "pDSkCiM7BAi6tzewjdK2ndu+N7gro9xCRMpIXOqFI7eUzxsoBnRvbTnVxAMbUch0\n"
    "AriaSeEZIHxqTk794QBmOMQx23a+tIB3wKEX94a0aJWIG4YAcoxEQAtKZh0yoGTS\n"
    "d7+HaEKiIhKsfbHVN5gwUDYYkWp+nFUZaMS/dTrrhSfmDhQvNCdwh1eKfAwq+tCA\n"
    "WdR58VR3Q6kxLPAoZKcd8Vqk2AI71wJzE4Vn2M4bhA16WiKEQyfXbrv1NVtyypvR\n"
    "qyAAxCYZjSwIuzLuYZZv05n6VeCExKGzqKFU+bepkpRHCWdg7cBXPT/4Yv9zI2La\n"
    "QbbQ7MiNE+72/zsI4UGkfMsKHTWqoXUz5FZsICOzXLt70RKrAcOF81nJUkJDykqG\n"
    "Y/dVVGndAgMBAAECggQADnDqJMSKjwflVLBMzRIG0eJjwZFOkQKuNaekUAfXqc/k\n"
    "zOBnfgOC6hjFdLQXN9rJWhcm0ySVHkv94uIcY8F08XZdESzNTmXYKf5rxU+4k1/f\n"
    "Bab36D37GiwwpdaLJkPTbXDSwVg+ewKVcGVhWjXdLwcjnqMYam+J2841LS+WT4mB\n"
    "sASab+nJvhy1sraNrt0XhK4qPKKpgJEJ/suXpVgkV5LGld4KptDBJVPrH+VIW9qJ\n"
    "HjCpzAxugL0ANQPVcQXO9gFd1NX78R9CUtYuBeBcSTApK6R8XhrqzJ/O3dnkqDzn\n"
    "BGk9C6tx55dEvkSUMmuFum1slelFI7r5NnI8yI9Z8pbrxed3KB4rgJLlQky0EfQd\n"
    "1rVCyS0hDk3jJht0s18acAMSbvmSJrx7BLpzwDK8EzcTwhN/hYdFutxRFH5QbcHZ\n"
    "JR1J4fIKhNrorADkdoZpqBPj2JQaHPKLsT0SVwXnzfwL7W9jkDBOGco+ruvNwkS7\n"
    "qI9sPc40UqX5YJ4LXCAh9ZSgvLefqYvak2UuVK0jKY/j9jBFDozhOyFDq0FTcifZ\n"
    "MVolAYSVl/FyYTRKd7kaYKkd6MU9kQHLTyrm/trMdCvMRmgzfKY1to8DfIMuxjqj\n"
    "uBFwj7dFxDFQ6uRp4o7hXg0GKStIonD/5bBezbvMl3zI3mnZUlAAaY5YG3armOP6\n"
    "D2SZ8EmteipUFEuex4B1eAUAkxXWm7R+XBIm5x3S3/KS5e9aoY7mnT7U5y29xDS2\n"
    "BRqTvdU5Jq6YKZryjUpFcIxZBKu8PNzA2Xeg5pqdafM44+Y2+I/V60OXEA6wKyFp\n"
    "kPylE0Frtk5Ac3NSn8uRNimKDEhisEngZ/QjlBdYAm+yvPVZWty9vcgaavPPiiIT\n"
    "BeTjLyD2rKkzxA3oIXv8SSR125mJaPbPpQCzCzfr62fWBULVJq5yc+V1+WNEmVxF\n"
    "FMRsed29Q7dzSG7IVT++V6xWZ7pntErtAafxpTB/jFnXlxZ2KupsCMCp/4UCnD4h\n"
    "gBUCncqMySgFX71otmemPs5XWLmqmp8H+oLO3n670T9+LgVy1wut88ogEZ2Aq158\n"
    "VC465KmdCQUlKzmRNcOePmN+PaJJ7OAtcG0g+APazpYoLlFe4VF94yQ7aQl14ic2\n"
    "GVRBr0Je6LNjJxgkasI2F7xL0aGPTZ+AnOi5g7GFZTGxqSRcEnDcZEuc5pz5R+Gz\n"
    "VJJjjXq4BMkvVvRbsJ+eaJbkzJXqadpqrg1KlWnGoHzCelKZHGS0BfgqiyPUhjpi\n"
    "Bbj2PEwIrdW1tknVAXMzwoZdLrQxDCFTxiGKDD5K3PgwkHgBxv7n9OZw8aHeRqqQ\n"
    "BRl1EbTZ45g7+VC3sICOM2Vkpo81KHOCG8qiEqHU7QKCAgEA+DSsjDNKLEPGXJMN\n"
    "1tI9lgP1grpGVX1TCkJbyml3Ht2wvF34XgBcX+zSjhWRBxsAMBncc9g3HMuSyvrD\n"
    "5HK5Z0J/HoyY1y0Ej4/XlipC9kWZTGSCduTGncBp1N+mi7orj3OxSsnvkhdE0VkA\n"
    "qOw73SVrQTR56kATuqkr8YlT5yZU+Iwo1jpdNO7cHblB/bufCKPTze1p9D7sZAzF\n"
    "yddTCUlg6obazTN74q8AwSqA4QY9slr0rQS6F5EEbrhTjO0GoV2bV/8gSloQIu+E\n"
    "zBvNCKjccc6b+Iee8QHuJeU0PFwX8AdenqT9+L1xTPR4p/ANf27qnUzKml+64oMy\n"
    "V5zFDftCo5rNaXsRtL+X5nGKP/WftswipMqePu/8x1Nw22hiQvXkihOzcK5fQ9ZE\n"
    "hbjuH4gzojSAZ6yrsetO1whCXsjRNnavfq1istkFsYSoJjw8n01+cnfEiKQCu1e+\n"
    "LKVfMdgdBq86e3M5amzpTgHXYDrL6zt+OmDty4bdXFYASJhB+WVQyk8lZW6eGDM8\n"
    "d7llumEZKFLEAFToDUL5PI9qf9G2c3Oailwowxy1+aVz8h0XBzbfnumJ1vgTcnaV\n"
    "QAPdfKDQFvYRUHe8iloz+16LWSAcO2psN+fqdDERRFf/OY96UYbP2zKgcUYkpA8T\n"
    "Cg4T7Q4zSwtkx6dUGDHYMOIKcQcCggIBAPBe2AD/igjAOoJTGB6ZYfMW+g/ORO54\n"
    "xLtsy3pW+z0MTorxg0puQVsJXzYo9GSc7tAJSST563G2ZWotBEmYDvFbvAuFVelV\n"
    "1RvxtqKWx4nRGF4gKbyZQOhQRiOWmIReOwJpHPJzlt42ARvWXYdjlGok60hM04B0\n"
    "qSMOm+ag7+ylm6h03w561G0c1kq/HEmDRmqQyR9M18wVanZMNYzwv+UzZBCDuvFD\n"
    "J5HhGJ94/dFYZnCkaSGUUWHtkn6hOrNhryaOblXKtKz6c+G2DNUkNBMlaNTbjNvh\n"
    "IXSBRSLoz2zmhntcSVONgq32Gqul8JqGDWVSiDaDmTYA7BvADdOhbBl0cc+XYIwe\n"
    "GTUUwPiH1f0M2kKHL1RvvsC9Jd7AsG+IjaRIBJ5+VwRFEE3zu1zcvZmuQnU+dfgl\n"
    "DxeZxosAU0oBudWPqfCrXq93TqTGCProGLZ0td9T+rF0kD0e11egnLz9cRbNbUFX\n"
    "MUcI9C+zm45SFZmYwx8A1W0i9eldaZpxqB9qUbHWjl+xLAyX4zCPxzxnsLTDPaoO\n"
    "Qxk2gW9H+WMQl68/Y+S16d/z+ns+28ZPCS7PjlK28LrxA9tmc5FgdFtOZ6GZBVwA\n"
    "vIVzDEVjm60fveye4evN5inQkOr8U1I/CDUIdLsSi8NK+zktyUEU8HDqYU66qJhz\n"
    "MUKTSSbh/aj7AoICADKphcLEQVKRru58cam0li+FtVourWaLwyRn8RZ6un7JX2bD\n"
    "g4ukZTaLP1sTGdwqbbpjvPTEYFN3Vgoqb0u1AxUJpKrWpefd331yLd4P2EUuZaEL\n"
    "LvoXrlbKzI9P602//V41ji2m1EisiTZ2BUV1mq6EEcVoca4X0C8cksSldEPNNjDZ\n"
    "Ywh/N0EztCg5BThGUKrRzczNtf/NzDCLzt9pHSDbInYcepLB/HqDoBLNmyrTPEqo\n"
    "eCLMwTNIPXBgHWW5h83uLmQixjOG+J4455FF527qEL0GIB31iMLG0xZXF3dukNBE\n"
    "oNKe+NwJxxOfHvWgcRDe0fKzlvM1sQ7FGsR5UluNOsfsNBtgrHeJV/cIm+B8QVJt\n"
    "jnC2juBn2d/Rr0qJnuzuBe0NImZQoU9Wb/wfiDNVeLyWHNOMkispzZjkra9tLA8C\n"
    "4MVpnKjG1XuriSrsxq75gWLaAXqmh4w317CDPNAOvbX8lGJYXZLUkjaC97RDrBXi\n"
    "udwuprsRVyOexkYLFgRS4s+4ofh3QLvN0XzakeIeKaVqZ2lt60OxtO/gkitu4d/k\n"
    "69lsAEH7HUXMuMLlnyqwz6o/HwyK7GVDwSkk4NOse20EYvpaxlgzG0MmxCi3/is+\n"
    "iMJMizWWQmEB2S2llKEJdGnYhpk4aQg3r3ow725GpL+fnr2F8QtTOT6ZFOqHAoIC\n"
    "AQC/Rzos0S1O+WmV+/ndn8FKaKZlnYdNHd2wKEtj94PGeNynxLjtqf9oKnUR7FVP\n"
    "G3MPKdSDED5EJxlc/KXEyrRZbN6fbGOJYzxLGHZ1u/bdvP7fKEkORAZa2EZ4W4bT\n"
    "Dwl2SZ83cLRF8EPBmzyiWKPqM6bnyfsk5bESrLVzOe6zKrZLv3UhWK1ihuggYyRn\n"
    "e4e1lbH2rnerd/9YVBzpI0wRYGvomGtTQlViyPWHMgkJZodea/cdOaHpg9xn2HWV\n"
    "+c4fqIg0zTIp1MQSgYSEuGKYOdTKTkwxTV4KEDSsKwelaWzrDe1sB9hOBuICZfKp\n"
    "hLN0RdEPUHnDd8hr7NET8AjN2NQYliXGWs1EaFeHbtDipi+pcVpAnwv05JAWStAc\n"
    "cVYFvSmv1mn4g90Nqz8WDrLycLGCC0plRVhVN5G/W2rsIaN4RvK9CiI3D4INrWnI\n"
    "AJpp10ZDididDl0Zxkkm+jDAVA6CTsb6kCAunvlyXEMVZky6Bc6ABXHRf1ihdCxt\n"
    "MrTPCxQnqM1zaNHc06F/K2sornr33cZcZS0QC0fE/kl+g92xH4imn/yUstpI6SSL\n"
    "EqoEDjb7q4i1usWO+mBM96ygXCwrdFHHfO6IY50IOtPPWMsSWPz/YMIf1FD+Lf1A\n"
    "HdiyGyCJHaEKr8hrH/xfRgJwWJNGy1MOvdwdVoeH4Z6xsQKCAgEA5GRTqskrkVp8\n"
    "7BD1TiJqV7TZzQx9DCqDREbUUeTEnVcaNCEwBRy+oUhAgrqTFwmukQ7wyyA+cjbj\n"
    "4do9myofio+al3mT4s9M+lso9WXkLIy3LmUtDvry0JRs7812ljBB1uD7jQ5Wb1DO\n"
    "4an4+Ns/+DeI4h2ST/C3SISu1r/wZ42wnWagvIKySb2P4suuj7fTy3xjfJnR+oPz\n"
    "NGqAOsPppr8kLWkAb7dpJV0pfIgJDqdJ5z5UzoZZQc+H2oYuMBKd3bKao9Ev1yOe\n"
    "JlniOc577+V0VwsSgGlFivU81l+mTie4ERyOEDqv7xLj4B12Exv4BbETNKshap7y\n"
    "BDTx5W27LRwg4TAFmoPH/Le1YCOXPE2jh86rTlMDiC1qqMg08DnQ3P9KT6/CH5MX\n"
    "0LvhotzQxmYMoCuX03kiv26DMAB21v0Tx1z8POLXB/V+J8I3XL4PTX4z3TMkBQ/k\n"
    "zB49KNKpzKjSj8tWH5Ye3DEFVaMiieKpx0zHchoic57ai+KSyrN8Kc1K4SzumwnK\n"
    "m+vBQg/7b0owzXKOftCfnj8sCs75HSN2AirHWzJdYH173ERQ/hSvgXkBZ3hRKrSg\n"
    "dAfudADlKAzvoXD/BQwX2OEQ/g4pPCkqqNb+8K3XygzV0CJFHr6b3wsqTrOlF7J8\n"
    "ltMAHqMGKeXvy3vAVXE6lOPkzySPHmY=\n"
    "-----END PRIVATE KEY-----\n";

static const char KEY_EC_P256[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgvXaqjdxSpCjrZRt/\n"
    "n7qw3Nfsd8kCB+TTXcSQs8qzC7GhRANCAASsrh13zhL3kFc+4LjRnE5ap0gaCTg0\n"
    "rYpa0svzAT2E3yTaZF87zwzWMyYCxxkk6/X6mt0iqfWhIktYPxs0HgH4\n"
    "-----END PRIVATE KEY-----\n";

static const char KEY_RSA_PSS[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEugIBADALBgkqhkiG9w0BAQoEggSmMIIEogIBAAKCAQEApWWygsFOO2eK+3+Y\n"
    "awl8t3hQwyrZ/QDOwLUcCAiC1Y+8h6XP1SHikBCiPPWWB2O1OL7PnbgCDZBCUicq\n"
    "b0VUwgQP/1benaKD5F2ytnAUS8WLGmCJHFKJcZL4DRSaSoVJn9yMI7D2R0A8n6cV\n"
    "mt9xN81FcvuMnBLN49+TcU8QYKhLkgTtGCeWA2VJZRkfhr0d+bi0AyeZX0rX0klu\n"
    "78agf/JkZntvPbdbwkS+GpPUQCFgo5mwRKxCOkCAmZpYuAU9UfTFxHQ8jZ6+rmiL\n"
    "yhLJaIsUjlbWemw+6yF9sSgbZuT7gHbi7RhWiRpYCjjFrJxYc421nHcLqPHsjf31\n"
    "1AhMrQIDAQABAoIBAEgsE9StsEsIuCNdfq96UNMoa6l2Se/2ScHaZbR1rk2tbnmM\n"
    "l5+rrRbrQzgxe/mWfy4XSTZL5I1xnRcHIyOxz7XnmulzSSnlEAN3BXRJfPnBZh0o\n"
    "8buLopEOLjJbAqaw+bsJvJcYcacOt0V9XdaaWOeeKYduj+FM7U3Zshd4Bi/+nHxn\n"
    "+p5fGDYyAIu/TL5P9FkCOitZxE1WmnVPuW0hKL2RvnHQgRPR5ck6B3eA5ZxgrxRU\n"
    "I0Myd8Z/FCpbFub4CLCP1UDrUGSxpkobDplFPJJuESVSdj49HOrMRPk5XtbKxagh\n"
    "I6ce23qTZKufnRRUC4wCi4DMRiuadpuQ5MeXOPsCgYEA0Rrr975oILGSbGeZBfMH\n"
    "PEI2WrbNvjSLqV1nRvcEjojmd4pgg/JIJ9fpy4g99R1HvB7oYLMMzzpbzDcBHivV\n"
    "ZdZtWeq7S/zH/TI5kqMjn0zeT6OS631ikfMrKkl2U1+DyA+Y/En38gJk1xc8ryHG\n"
    "mm4hdp7F7sFo6iVrp2/eBx8CgYEAyn1uZPszglL0RPIUSL0cZYq1hTcZlKJycrzI\n"
    "bAZcELJAfFyRoVzxw6mwWvDT5Pz46o/TpjOgZfq+LvaR7j8DgsZkmIknw9sUnPRx\n"
    "mriDznwP/r8zQ8MO3cd9qDuQNiA+DndarrVUel+uHudxeeB4tP4mDfxPj4QNYx+x\n"
    "07YGbrMCgYBDdOHmvEAvO9m2qv0MlEgjQmDyhsJ8t8rOSlmE5S9NJBDlQ3i7WC+6\n"
    "2saLaFpEdrurjnT8rQZW28a9bIkpyI5BGhmQxk7BxrxljAxSp9pYC540JtrAqWRh\n"
    "HQcxzx0i7E9A/PcnfF1Gb0tEsDRdcxH0w857y+CikzZbQtMl4srHlQKBgFIXIc8s\n"
    "i8hU6xScc569lCqSXl7AZM1+QhnD8RjiRya5rSz9tkiNzrG9NHLZ2X2nFR666loh\n"
    "6fAOBFYzvhuxTjIRTi0MxaNASQ4Mh5XrIfxvDWkAiL768Cb3Pjka1K8syRvCRXA4\n"
    "sSPfcE61E6sOVsFBm5nl5TdQmMDL06L504fDAoGAWtTsqtMBUmysSJlIuFr/wR+o\n"
    "nbRhRlsr8ECzFYvqoK0PBiQ7qUwcRcr0mN+ILa7BstEozrAMhsXQQDibw1Ztt5Ke\n"
    "+cbvZ+QdbakRDpx7oUKmlOEv7M5wGPlYnbwhddpES9A3JlG44GuztpI+oG9nmuln\n"
    "vK2dSfG6x+VFQVhg+iA=\n"
    "-----END PRIVATE KEY-----\n";

/* A PEM text's first base64 line, to look for in messages. */
static void
assert_no_key_text(const char *msg, const char *pem)
{
	const char	*line = strchr(pem, '\n');
	char		 b[33];

	if (line == NULL || strncmp(pem, "-----BEGIN ", 11) != 0 ||
	    strnlen(line + 1, 32) < 32)
		return;
	memcpy(b, line + 1, 32);
	b[32] = '\0';
	assert_null(strstr(msg, b));
}

/* Private PEM text refused with code and a message holding want. */
static void
refused_private(const char *pem, size_t len, int code, const char *want)
{
	struct cb_error	 err = { 0, "" };
	EVP_PKEY	*k = (EVP_PKEY *)&err;

	assert_int_equal(pkey_private_from_pem(pem, len, &k, &err), -code);
	assert_null(k);
	assert_int_equal(err.code, code);
	if (strstr(err.msg, want) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
	assert_no_key_text(err.msg, pem);
	assert_int_equal(ERR_peek_error(), 0);
}

/* Public PEM text refused likewise. */
static void
refused_public(const char *pem, size_t len, int code, const char *want)
{
	struct cb_error	 err = { 0, "" };
	EVP_PKEY	*k = (EVP_PKEY *)&err;

	assert_int_equal(pkey_public_from_pem(pem, len, &k, &err), -code);
	assert_null(k);
	assert_int_equal(err.code, code);
	if (strstr(err.msg, want) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
	assert_no_key_text(err.msg, pem);
	assert_int_equal(ERR_peek_error(), 0);
}

static EVP_PKEY *
load_private(const char *pem)
{
	struct cb_error	 err = { 0, "" };
	EVP_PKEY	*k = NULL;

	if (pkey_private_from_pem(pem, strlen(pem), &k, &err) != 0)
		fail_msg("pkey_private_from_pem: %s", err.msg);
	assert_non_null(k);
	assert_int_equal(ERR_peek_error(), 0);
	return k;
}

static EVP_PKEY *
load_public(const char *pem)
{
	struct cb_error	 err = { 0, "" };
	EVP_PKEY	*k = NULL;

	if (pkey_public_from_pem(pem, strlen(pem), &k, &err) != 0)
		fail_msg("pkey_public_from_pem: %s", err.msg);
	assert_non_null(k);
	return k;
}

/* The DER inside a PEM text (its base64 lines), decoded in the test. */
static size_t
pem_body_der(const char *pem, uint8_t *der, size_t dersz)
{
	char		 b64[8192];
	const char	*p, *e;
	size_t		 n = 0;
	int		 m;

	p = strchr(pem, '\n') + 1;
	e = strstr(p, "-----END ");
	assert_non_null(e);
	for (; p < e; p++)
		if (*p != '\n')
			b64[n++] = *p;
	assert_true(n / 4 * 3 <= dersz);
	m = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)n);
	assert_true(m > 0);
	/* EVP_DecodeBlock counts padding as bytes. */
	if (n >= 1 && b64[n - 1] == '=')
		m--;
	if (n >= 2 && b64[n - 2] == '=')
		m--;
	return (size_t)m;
}

static void
test_secure_heap_holds_loaded_private_key(void **state)
{
	struct cb_error	 err = { 0, "" };
	EVP_PKEY	*k;
	size_t		 before, during;

	(void)state;
	assert_int_equal(pkey_secure_heap_init(&err), 0);
	assert_int_equal(CRYPTO_secure_malloc_initialized(), 1);
	/* Once per process: a second call does nothing. */
	assert_int_equal(pkey_secure_heap_init(&err), 0);

	before = CRYPTO_secure_used();
	k = load_private(KEY_A_PKCS8);
	during = CRYPTO_secure_used();
	/* d, p, q, dp, dq, qinv of a 2048-bit key: well over 512 bytes. */
	if (during < before + 512)
		fail_msg("secure heap %zu -> %zu bytes with a key loaded",
		    before, during);
	EVP_PKEY_free(k);
	assert_int_equal(CRYPTO_secure_used(), before);
}

static void
test_pkcs1_and_pkcs8_pem_load_the_same_key(void **state)
{
	EVP_PKEY	*k8, *k1;

	(void)state;
	k8 = load_private(KEY_A_PKCS8);
	k1 = load_private(KEY_A_PKCS1);
	assert_true(EVP_PKEY_is_a(k8, "RSA"));
	assert_int_equal(pkey_bits(k8), 2048);
	assert_int_equal(EVP_PKEY_eq(k8, k1), 1);
	EVP_PKEY_free(k1);
	k1 = load_private(KEY_B_PKCS8);
	assert_int_not_equal(EVP_PKEY_eq(k8, k1), 1);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k8);
}

static void
test_encrypted_pem_refused_as_encrypted(void **state)
{
	(void)state;
	refused_private(KEY_A_ENC_PKCS8, strlen(KEY_A_ENC_PKCS8), CB_EBADREQ,
	    MSG_ENCRYPTED);
	refused_private(KEY_A_ENC_PKCS1, strlen(KEY_A_ENC_PKCS1), CB_EBADREQ,
	    MSG_ENCRYPTED);
}

static void
test_modulus_outside_2048_to_4096_refused_with_size(void **state)
{
	(void)state;
	refused_private(KEY_RSA1024, strlen(KEY_RSA1024), CB_EBADREQ,
	    "the key is an RSA key of 1024 bits; only 2048 to 4096 bits");
	refused_private(KEY_RSA8192, strlen(KEY_RSA8192), CB_EBADREQ,
	    "the key is an RSA key of 8192 bits; only 2048 to 4096 bits");
}

static void
test_non_rsa_keys_refused_naming_type(void **state)
{
	(void)state;
	refused_private(KEY_EC_P256, strlen(KEY_EC_P256), CB_EBADREQ,
	    "the key is an EC key; only RSA keys are supported");
	refused_private(KEY_RSA_PSS, strlen(KEY_RSA_PSS), CB_EBADREQ,
	    "the key is an RSA-PSS key; only RSA keys are supported");
}

static void
test_garbage_and_empty_text_refused(void **state)
{
	static const char	 garbage[] = "hello, world\n";
	static const char	 broken[] = "-----BEGIN PRIVATE KEY-----\n"
	    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC!!!!\n"
	    "-----END PRIVATE KEY-----\n";
	static const char	 nul[] = "\0\0\0\0";
	char			*cut;
	size_t			 n;

	(void)state;
	refused_private("", 0, CB_EBADREQ, "not a PEM private key");
	refused_private(garbage, strlen(garbage), CB_EBADREQ,
	    "not a PEM private key");
	refused_private(nul, sizeof(nul), CB_EBADREQ, "not a PEM private key");
	refused_private(broken, strlen(broken), CB_EBADREQ,
	    "not a valid PEM private key");
	/* A good key cut short in its middle. */
	n = strlen(KEY_A_PKCS8) / 2;
	cut = malloc(n);
	assert_non_null(cut);
	memcpy(cut, KEY_A_PKCS8, n);
	refused_private(cut, n, CB_EBADREQ, "not a valid PEM private key");
	free(cut);
	refused_public("", 0, CB_EBADREQ, "not a PEM public key");
	refused_public(garbage, strlen(garbage), CB_EBADREQ,
	    "not a PEM public key");
}

static void
test_public_key_given_as_private_refused(void **state)
{
	(void)state;
	refused_private(KEY_A_SPKI, strlen(KEY_A_SPKI), CB_EBADREQ,
	    "the text is a public key; give the private key");
	refused_private(KEY_A_PUB_PKCS1, strlen(KEY_A_PUB_PKCS1), CB_EBADREQ,
	    "the text is a public key; give the private key");
}

static void
test_private_key_given_as_public_refused(void **state)
{
	(void)state;
	refused_public(KEY_A_PKCS8, strlen(KEY_A_PKCS8), CB_EBADREQ,
	    "the text is a private key; a peer key is public");
	refused_public(KEY_A_PKCS1, strlen(KEY_A_PKCS1), CB_EBADREQ,
	    "the text is a private key; a peer key is public");
	refused_public(KEY_A_ENC_PKCS8, strlen(KEY_A_ENC_PKCS8), CB_EBADREQ,
	    "the text is a private key; a peer key is public");
}

static void
test_spki_and_pkcs1_public_pem_accepted(void **state)
{
	EVP_PKEY	*priv, *spki, *pkcs1;

	(void)state;
	priv = load_private(KEY_A_PKCS8);
	spki = load_public(KEY_A_SPKI);
	pkcs1 = load_public(KEY_A_PUB_PKCS1);
	assert_int_equal(pkey_bits(spki), 2048);
	assert_int_equal(EVP_PKEY_eq(spki, pkcs1), 1);
	/* The public half of the private key. */
	assert_int_equal(EVP_PKEY_eq(spki, priv), 1);
	EVP_PKEY_free(pkcs1);
	EVP_PKEY_free(spki);
	EVP_PKEY_free(priv);
}

static void
test_public_key_refused_like_private(void **state)
{
	EVP_PKEY	*k;
	struct cb_error	 err = { 0, "" };
	BIO		*bio;
	char		 pem[4096], *data;
	long		 n;

	(void)state;
	/* The public halves of the EC and RSA-1024 keys. */
	k = NULL;
	bio = BIO_new_mem_buf(KEY_EC_P256, -1);
	assert_non_null(bio);
	k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	assert_non_null(k);
	BIO_free(bio);
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PUBKEY(bio, k), 1);
	n = BIO_get_mem_data(bio, &data);
	assert_true(n > 0 && (size_t)n < sizeof(pem));
	memcpy(pem, data, (size_t)n);
	pem[n] = '\0';
	BIO_free(bio);
	EVP_PKEY_free(k);
	refused_public(pem, strlen(pem), CB_EBADREQ,
	    "the key is an EC key; only RSA keys are supported");

	k = load_private(KEY_B_PKCS8);
	EVP_PKEY_free(k);
	k = NULL;
	assert_int_equal(pkey_private_from_pem(KEY_RSA1024,
	    strlen(KEY_RSA1024), &k, &err), -CB_EBADREQ);
	bio = BIO_new_mem_buf(KEY_RSA1024, -1);
	k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	assert_non_null(k);
	BIO_free(bio);
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PUBKEY(bio, k), 1);
	n = BIO_get_mem_data(bio, &data);
	memcpy(pem, data, (size_t)n);
	pem[n] = '\0';
	BIO_free(bio);
	EVP_PKEY_free(k);
	refused_public(pem, strlen(pem), CB_EBADREQ,
	    "the key is an RSA key of 1024 bits; only 2048 to 4096 bits");
}

static void
test_trailing_text_accepted_second_key_refused(void **state)
{
	char		 two[8192];
	EVP_PKEY	*k, *want;

	(void)state;
	snprintf(two, sizeof(two), "%sthis is a comment\n", KEY_A_PKCS8);
	want = load_private(KEY_A_PKCS8);
	k = load_private(two);
	assert_int_equal(EVP_PKEY_eq(k, want), 1);
	EVP_PKEY_free(k);
	snprintf(two, sizeof(two), "%s%s", KEY_A_PKCS8, KEY_B_PKCS8);
	refused_private(two, strlen(two), CB_EBADREQ,
	    "the text holds more than one key");
	snprintf(two, sizeof(two), "%s%s", KEY_A_PKCS8, KEY_A_SPKI);
	refused_private(two, strlen(two), CB_EBADREQ,
	    "the text holds more than one key");
	snprintf(two, sizeof(two), "%s%s", KEY_A_SPKI, KEY_A_PUB_PKCS1);
	refused_public(two, strlen(two), CB_EBADREQ,
	    "the text holds more than one key");
	EVP_PKEY_free(want);
}

static void
test_pem_longer_than_max_is_too_large(void **state)
{
	char	*big;
	size_t	 n = PKEY_PEM_MAX + 1;

	(void)state;
	big = malloc(n);
	assert_non_null(big);
	memset(big, '\n', n);
	memcpy(big, KEY_A_PKCS8, strlen(KEY_A_PKCS8));
	refused_private(big, n, CB_ETOOLARGE, "at most 16384");
	refused_public(big, n, CB_ETOOLARGE, "at most 16384");
	/* Exactly PKEY_PEM_MAX bytes is still read. */
	{
		struct cb_error	 err = { 0, "" };
		EVP_PKEY	*k = NULL;

		assert_int_equal(pkey_private_from_pem(big, n - 1, &k, &err),
		    0);
		EVP_PKEY_free(k);
	}
	free(big);
}

static void
test_der_forms_match_openssl(void **state)
{
	struct cb_error	 err = { 0, "" };
	struct secbuf	 der = SECBUF_INIT;
	uint8_t		 want[4096];
	size_t		 wantlen;
	EVP_PKEY	*k, *k2 = NULL;
	char		*pem = NULL;

	(void)state;
	k = load_private(KEY_A_PKCS1);

	/* PKCS#8 DER: what openssl genpkey wrote in KEY_A_PKCS8. */
	assert_int_equal(pkey_private_der(k, &der, &err), 0);
	wantlen = pem_body_der(KEY_A_PKCS8, want, sizeof(want));
	assert_int_equal(der.len, wantlen);
	assert_memory_equal(der.data, want, wantlen);
	assert_int_equal(pkey_private_from_der(der.data, der.len, &k2, &err),
	    0);
	assert_int_equal(EVP_PKEY_eq(k, k2), 1);
	EVP_PKEY_free(k2);
	k2 = NULL;
	/* One byte short, or one extra byte: refused. */
	assert_int_equal(pkey_private_from_der(der.data, der.len - 1, &k2,
	    &err), -CB_EBADREQ);
	assert_null(k2);
	assert_int_equal(secbuf_append(&der, "", 1), 0);
	assert_int_equal(pkey_private_from_der(der.data, der.len, &k2, &err),
	    -CB_EBADREQ);
	assert_int_equal(pkey_private_from_der(der.data, 0, &k2, &err),
	    -CB_EBADREQ);
	assert_int_equal(ERR_peek_error(), 0);

	/* Appended, not replaced. */
	secbuf_reset(&der);
	assert_int_equal(secbuf_append(&der, "xy", 2), 0);
	assert_int_equal(pkey_public_der(k, &der, &err), 0);
	wantlen = pem_body_der(KEY_A_SPKI, want, sizeof(want));
	assert_int_equal(der.len, 2 + wantlen);
	assert_memory_equal(der.data, "xy", 2);
	assert_memory_equal(der.data + 2, want, wantlen);
	assert_int_equal(pkey_public_from_der(der.data + 2, der.len - 2, &k2,
	    &err), 0);
	assert_int_equal(EVP_PKEY_eq(k, k2), 1);
	EVP_PKEY_free(k2);
	k2 = NULL;
	assert_int_equal(pkey_public_from_der(der.data + 2, der.len - 3, &k2,
	    &err), -CB_EBADREQ);
	assert_null(k2);

	/* A private key's DER is not a public key's. */
	secbuf_reset(&der);
	assert_int_equal(pkey_private_der(k, &der, &err), 0);
	assert_int_equal(pkey_public_from_der(der.data, der.len, &k2, &err),
	    -CB_EBADREQ);
	secbuf_free(&der);

	/* SPKI PEM: what openssl pkey -pubout wrote. */
	assert_int_equal(pkey_public_pem(k, &pem, &err), 0);
	assert_string_equal(pem, KEY_A_SPKI);
	free(pem);
	EVP_PKEY_free(k);
}

static void
test_generate_makes_2048_bits_e_65537(void **state)
{
	struct cb_error	 err = { 0, "" };
	EVP_PKEY	*k = NULL, *k2 = NULL;
	BIGNUM		*e = NULL;
	struct secbuf	 der = SECBUF_INIT;

	(void)state;
	assert_int_equal(pkey_generate(PKEY_BITS_GENERATE, &k, &err), 0);
	assert_non_null(k);
	assert_true(EVP_PKEY_is_a(k, "RSA"));
	assert_int_equal(pkey_bits(k), 2048);
	assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e),
	    1);
	assert_true(BN_is_word(e, 65537));
	BN_free(e);
	/* It is a private key, and it survives the DER round trip. */
	assert_int_equal(pkey_private_der(k, &der, &err), 0);
	assert_int_equal(pkey_private_from_der(der.data, der.len, &k2, &err),
	    0);
	assert_int_equal(EVP_PKEY_eq(k, k2), 1);
	secbuf_free(&der);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k);
	k = NULL;
	assert_int_equal(pkey_generate(1024, &k, &err), -CB_EBADREQ);
	assert_null(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secure_heap_holds_loaded_private_key),
		cmocka_unit_test(test_pkcs1_and_pkcs8_pem_load_the_same_key),
		cmocka_unit_test(test_encrypted_pem_refused_as_encrypted),
		cmocka_unit_test(
		    test_modulus_outside_2048_to_4096_refused_with_size),
		cmocka_unit_test(test_non_rsa_keys_refused_naming_type),
		cmocka_unit_test(test_garbage_and_empty_text_refused),
		cmocka_unit_test(test_public_key_given_as_private_refused),
		cmocka_unit_test(test_private_key_given_as_public_refused),
		cmocka_unit_test(test_spki_and_pkcs1_public_pem_accepted),
		cmocka_unit_test(test_public_key_refused_like_private),
		cmocka_unit_test(
		    test_trailing_text_accepted_second_key_refused),
		cmocka_unit_test(test_pem_longer_than_max_is_too_large),
		cmocka_unit_test(test_der_forms_match_openssl),
		cmocka_unit_test(test_generate_makes_2048_bits_e_65537),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
