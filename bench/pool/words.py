"""Word lists per language for the generated captions (no downloads), and the language mix.

Captions of web alt-texts: product names, places, "photo of", colours, sizes, years. Each
language's list holds common words of that language as they appear in alt-texts (stop words
first: a caption drawn from the list reads as that language to a language detector). CJK and
Thai captions are written without spaces (``SPACELESS``), as they are on the web.

``MIX`` is the share of each language among the generated captions: ~65% English, the rest the
web's other large languages (DataComp's pool is ~55-65% English by fastText).
"""

from __future__ import annotations

WORDS: dict[str, str] = {
    "en": """the a of and in with for on to at from by photo image picture stock vector
        illustration background white black red blue green yellow pink grey brown gold silver
        wooden vintage modern new old small large big little beautiful cute happy young woman
        man girl boy child family people couple dog cat bird horse flower tree garden house home
        kitchen room bedroom bathroom living table chair sofa bed lamp wall floor door window
        car truck bike road street city town village beach sea ocean lake river mountain forest
        park sky sunset sunrise night day winter summer spring autumn snow rain water food cake
        bread coffee tea wine dinner breakfast lunch salad chicken pizza shirt dress shoes bag
        jacket hat ring necklace watch phone laptop book paper card logo icon design pattern
        art painting drawing print poster wedding party birthday christmas holiday travel hotel
        view top best free high quality set collection pack size inch cm men women kids baby
        store shop sale buy price model style fashion home decor hand made handmade natural
        wood metal glass stone leather cotton wool silk plastic steel black and white close up
        portrait landscape abstract texture isolated closeup detail front back side inside
        outside under over near this that is are was his her their our your its which""",
    "de": """der die das und mit von für auf im in zu ein eine einer einem den dem des ist
        nicht sich auch bei aus nach wie oder aber noch nur über unter vor zwischen Bild Foto
        Haus Garten Küche Zimmer Tisch Stuhl Bett Lampe Wand Tür Fenster Auto Straße Stadt Dorf
        Strand Meer See Fluss Berg Wald Himmel Sonnenuntergang Nacht Tag Winter Sommer Frühling
        Herbst Schnee Regen Wasser Kuchen Brot Kaffee Wein Frau Mann Mädchen Junge Kind Familie
        Hund Katze Vogel Pferd Blume Baum schön klein groß neu alt weiß schwarz rot blau grün
        gelb Geschenk Hochzeit Geburtstag Weihnachten Urlaub Reise Hotel Kleid Schuhe Tasche
        Jacke Uhr Buch Karte Muster Kunst Druck Größe Preis kaufen günstig hochwertig Holz
        Metall Glas Stein Leder Baumwolle Herren Damen Kinder Wohnzimmer Schlafzimmer Badezimmer""",
    "fr": """le la les de des du un une et à au aux avec pour sur dans par en est sont pas
        plus ou mais qui que ce cette ces son sa ses nous vous ils elle photo image maison
        jardin cuisine chambre table chaise lit lampe mur porte fenêtre voiture rue ville
        village plage mer lac rivière montagne forêt ciel coucher soleil nuit jour hiver été
        printemps automne neige pluie eau gâteau pain café vin femme homme fille garçon enfant
        famille chien chat oiseau cheval fleur arbre beau belle petit petite grand grande
        nouveau vieux blanc noir rouge bleu vert jaune cadeau mariage anniversaire Noël vacances
        voyage hôtel robe chaussures sac veste montre livre carte motif art impression taille
        prix acheter pas cher qualité bois métal verre pierre cuir coton homme femme enfants""",
    "es": """el la los las de del un una y en con para por al es son no más o pero que
        como su sus este esta estos nuestro foto imagen casa jardín cocina habitación mesa
        silla cama lámpara pared puerta ventana coche calle ciudad pueblo playa mar lago río
        montaña bosque cielo puesta sol noche día invierno verano primavera otoño nieve lluvia
        agua pastel pan café vino mujer hombre niña niño familia perro gato pájaro caballo flor
        árbol hermoso hermosa pequeño pequeña grande nuevo viejo blanco negro rojo azul verde
        amarillo regalo boda cumpleaños navidad vacaciones viaje hotel vestido zapatos bolso
        chaqueta reloj libro tarjeta diseño arte impresión tamaño precio comprar barato calidad
        madera metal vidrio piedra cuero algodón hombres mujeres niños""",
    "it": """il lo la i gli le di del della dei un una e in con per su da al alla è sono
        non più o ma che come suo sua questo questa foto immagine casa giardino cucina camera
        tavolo sedia letto lampada muro porta finestra auto strada città paese spiaggia mare
        lago fiume montagna bosco cielo tramonto notte giorno inverno estate primavera autunno
        neve pioggia acqua torta pane caffè vino donna uomo ragazza ragazzo bambino famiglia
        cane gatto uccello cavallo fiore albero bello bella piccolo grande nuovo vecchio bianco
        nero rosso blu verde giallo regalo matrimonio compleanno natale vacanze viaggio albergo
        vestito scarpe borsa giacca orologio libro biglietto arte stampa taglia prezzo""",
    "pt": """o a os as de do da dos das um uma e em com para por no na é são não mais ou
        mas que como seu sua este esta foto imagem casa jardim cozinha quarto mesa cadeira
        cama lâmpada parede porta janela carro rua cidade vila praia mar lago rio montanha
        floresta céu pôr sol noite dia inverno verão primavera outono neve chuva água bolo pão
        café vinho mulher homem menina menino criança família cachorro gato pássaro cavalo flor
        árvore bonito bonita pequeno grande novo velho branco preto vermelho azul verde amarelo
        presente casamento aniversário natal férias viagem hotel vestido sapatos bolsa jaqueta
        relógio livro cartão arte tamanho preço comprar barato qualidade madeira""",
    "nl": """de het een en van in met voor op aan bij uit naar is zijn niet ook maar of
        dat die deze dit wat foto afbeelding huis tuin keuken kamer tafel stoel bed lamp muur
        deur raam auto straat stad dorp strand zee meer rivier berg bos lucht zonsondergang
        nacht dag winter zomer lente herfst sneeuw regen water taart brood koffie wijn vrouw
        man meisje jongen kind familie hond kat vogel paard bloem boom mooi mooie klein groot
        nieuw oud wit zwart rood blauw groen geel cadeau bruiloft verjaardag kerst vakantie reis
        jurk schoenen tas jas horloge boek kaart kunst maat prijs kopen goedkoop kwaliteit hout""",
    "pl": """i w z na do się nie jest to od po dla o że jak ale lub przez przy ten ta te
        zdjęcie obraz dom ogród kuchnia pokój stół krzesło łóżko lampa ściana drzwi okno
        samochód ulica miasto wieś plaża morze jezioro rzeka góry las niebo zachód słońca noc
        dzień zima lato wiosna jesień śnieg deszcz woda ciasto chleb kawa wino kobieta
        mężczyzna dziewczyna chłopiec dziecko rodzina pies kot ptak koń kwiat drzewo piękny
        piękna mały duży nowy stary biały czarny czerwony niebieski zielony żółty prezent ślub
        urodziny święta wakacje podróż hotel sukienka buty torba kurtka zegarek książka""",
    "ru": """и в на с по для из от к о не что это как или но при за до под над все его
        её их фото изображение картинка дом сад кухня комната стол стул кровать лампа стена
        дверь окно машина улица город деревня пляж море озеро река гора лес небо закат ночь
        день зима лето весна осень снег дождь вода торт хлеб кофе вино женщина мужчина
        девушка мальчик ребенок семья собака кошка птица лошадь цветок дерево красивый
        красивая маленький большой новый старый белый черный красный синий зеленый желтый
        подарок свадьба день рождения новый год отпуск путешествие отель платье обувь сумка
        куртка часы книга открытка купить цена качество дерево металл стекло""",
    "ja": """写真 画像 の に は を が と で から まで 家 庭 台所 部屋 机 椅子 ベッド ランプ
        壁 ドア 窓 車 道 街 町 村 海 浜 湖 川 山 森 空 夕日 夜 昼 冬 夏 春 秋 雪 雨 水 ケーキ
        パン コーヒー ワイン 女性 男性 女の子 男の子 子供 家族 犬 猫 鳥 馬 花 木 美しい
        かわいい 小さい 大きい 新しい 古い 白 黒 赤 青 緑 黄色 プレゼント 結婚式 誕生日
        クリスマス 旅行 ホテル ドレス 靴 バッグ 時計 本 カード デザイン 素材 通販 送料無料
        販売 価格 人気 おしゃれ レディース メンズ キッズ です ます""",
    "zh": """的 了 在 是 和 与 图片 照片 高清 家 花园 厨房 房间 桌子 椅子 床 灯 墙 门
        窗户 汽车 街道 城市 村庄 海滩 大海 湖 河 山 森林 天空 日落 夜晚 白天 冬天 夏天
        春天 秋天 雪 雨 水 蛋糕 面包 咖啡 葡萄酒 女人 男人 女孩 男孩 孩子 家庭 狗 猫 鸟 马
        花 树 美丽 可爱 小 大 新 旧 白色 黑色 红色 蓝色 绿色 黄色 礼物 婚礼 生日 圣诞节
        旅游 酒店 连衣裙 鞋 包 手表 书 卡片 设计 素材 背景 免费 下载 价格 时尚 女装 男装""",
    "ko": """사진 이미지 의 에 는 을 를 이 가 과 와 집 정원 주방 방 테이블 의자 침대 램프
        벽 문 창문 자동차 거리 도시 마을 해변 바다 호수 강 산 숲 하늘 일몰 밤 낮 겨울 여름
        봄 가을 눈 비 물 케이크 빵 커피 와인 여자 남자 소녀 소년 아이 가족 개 고양이 새 말
        꽃 나무 아름다운 귀여운 작은 큰 새로운 오래된 흰색 검은색 빨간색 파란색 선물 결혼식
        생일 크리스마스 여행 호텔 드레스 신발 가방 시계 책 카드 디자인 가격 패션""",
    "tr": """ve bir bu ile için de da çok daha en gibi olan olarak resim fotoğraf ev bahçe
        mutfak oda masa sandalye yatak lamba duvar kapı pencere araba sokak şehir köy plaj
        deniz göl nehir dağ orman gökyüzü gün batımı gece gün kış yaz ilkbahar sonbahar kar
        yağmur su pasta ekmek kahve şarap kadın erkek kız oğlan çocuk aile köpek kedi kuş at
        çiçek ağaç güzel küçük büyük yeni eski beyaz siyah kırmızı mavi yeşil sarı hediye
        düğün doğum günü tatil seyahat otel elbise ayakkabı çanta ceket saat kitap fiyat""",
    "vi": """và của có là trong với cho một những các được này đó hình ảnh nhà vườn bếp
        phòng bàn ghế giường đèn tường cửa sổ xe đường thành phố làng bãi biển hồ sông núi
        rừng bầu trời hoàng hôn đêm ngày mùa đông mùa hè mùa xuân mùa thu tuyết mưa nước bánh
        mì cà phê rượu vang phụ nữ đàn ông cô gái cậu bé trẻ em gia đình chó mèo chim ngựa
        hoa cây đẹp nhỏ lớn mới cũ trắng đen đỏ xanh vàng quà cưới sinh nhật du lịch khách sạn
        váy giày túi áo khoác đồng hồ sách giá""",
    "id": """dan yang di ke dari dengan untuk ini itu pada adalah tidak akan juga foto gambar
        rumah taman dapur kamar meja kursi tempat tidur lampu dinding pintu jendela mobil jalan
        kota desa pantai laut danau sungai gunung hutan langit matahari terbenam malam hari
        musim salju hujan air kue roti kopi anggur wanita pria gadis anak laki keluarga anjing
        kucing burung kuda bunga pohon cantik indah kecil besar baru lama putih hitam merah
        biru hijau kuning hadiah pernikahan ulang tahun liburan perjalanan hotel gaun sepatu
        tas jaket jam buku kartu desain harga murah""",
    "sv": """och i på med för av till en ett som är det den inte om men eller från bild
        foto hus trädgård kök rum bord stol säng lampa vägg dörr fönster bil gata stad by
        strand hav sjö flod berg skog himmel solnedgång natt dag vinter sommar vår höst snö regn
        vatten tårta bröd kaffe vin kvinna man flicka pojke barn familj hund katt fågel häst
        blomma träd vacker liten stor ny gammal vit svart röd blå grön gul present bröllop""",
    "cs": """a v na s se z do je to pro od po o že jak ale nebo při tento tato fotka
        obrázek dům zahrada kuchyně pokoj stůl židle postel lampa zeď dveře okno auto ulice
        město vesnice pláž moře jezero řeka hora les nebe západ slunce noc den zima léto jaro
        podzim sníh déšť voda dort chléb káva víno žena muž dívka chlapec dítě rodina pes kočka
        pták kůň květina strom krásný malý velký nový starý bílý černý červený modrý zelený""",
    "th": """ภาพ รูป บ้าน สวน ห้อง ครัว โต๊ะ เก้าอี้ เตียง โคมไฟ ผนัง ประตู หน้าต่าง รถ ถนน
        เมือง หมู่บ้าน ชายหาด ทะเล ทะเลสาบ แม่น้ำ ภูเขา ป่า ท้องฟ้า พระอาทิตย์ตก กลางคืน
        กลางวัน ฝน น้ำ เค้ก ขนมปัง กาแฟ ผู้หญิง ผู้ชาย เด็ก ครอบครัว สุนัข แมว นก ม้า ดอกไม้
        ต้นไม้ สวย น่ารัก เล็ก ใหญ่ ใหม่ เก่า สีขาว สีดำ สีแดง ของขวัญ งานแต่งงาน วันเกิด
        ท่องเที่ยว โรงแรม ชุด รองเท้า กระเป๋า นาฬิกา หนังสือ ราคา""",
}

#: tokens that belong to no language: numbers, camera file names, sizes, separators
NEUTRAL = [
    "2019",
    "2020",
    "2021",
    "2022",
    "2023",
    "1",
    "2",
    "3",
    "4",
    "5",
    "10",
    "12",
    "20",
    "50",
    "100",
    "HD",
    "4K",
    "PNG",
    "JPG",
    "|",
    "-",
    "–",
    ":",
    "IMG_1234",
    "DSC_0042",
    "IMG_20190614",
    "P1010203",
    "#1",
    "No.",
    "x",
    "3D",
    "XL",
    "XXL",
    "1080p",
    "A4",
    "iPhone",
    "Samsung",
    "Nike",
    "Adidas",
    "IKEA",
    "LEGO",
    "Disney",
    "Amazon",
    "eBay",
    "Etsy",
    "Pinterest",
]

#: share of captions per language (sums to 1)
MIX: dict[str, float] = {
    "en": 0.65,
    "de": 0.055,
    "fr": 0.045,
    "es": 0.045,
    "it": 0.025,
    "pt": 0.03,
    "nl": 0.015,
    "pl": 0.015,
    "ru": 0.03,
    "ja": 0.025,
    "zh": 0.02,
    "ko": 0.008,
    "tr": 0.008,
    "vi": 0.008,
    "id": 0.008,
    "sv": 0.005,
    "cs": 0.004,
    "th": 0.004,
}

#: written without spaces between words
SPACELESS = frozenset({"ja", "zh", "th"})


def vocabulary(language: str) -> list[str]:
    return WORDS[language].split()
