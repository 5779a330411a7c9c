// The emoji picker: a small popover anchored to the button that opened it,
// with a search box, a "Recently used" row and the emoji in categories. On
// narrow screens it is a sheet along the bottom of the screen.
//
// Keyboard: the arrow keys move in the grid (up and down by a whole row),
// Home/End go to the first/last emoji, Page Up/Down jump between categories,
// Enter or Space picks, typing goes to the search box, Tab cycles inside the
// picker and Escape closes it and gives focus back to the button.
//
// Names are the Unicode CLDR short names; the words after ";" only help the
// search. Every emoji is at most 16 code points without whitespace, which is
// what the server accepts as a reaction.

import { h } from './dom.js';

/** The reactions offered next to a message before the full picker. */
export const QUICK_REACTIONS = Object.freeze(['👍', '❤️', '😂', '🎉', '😮', '😢']);

const RECENT_KEY = 'hearth.emoji.recent';
const RECENT_MAX = 16;

// [key, title, lines]: one "<emoji> <short name>;<more search words>" a line.
const DATA = [
  ['smileys', 'Smileys & emotion', `
😀 grinning face;smile happy joy
😃 grinning face with big eyes;smile happy
😄 grinning face with smiling eyes;smile happy laugh
😁 beaming face with smiling eyes;grin happy
😆 grinning squinting face;laugh happy lol
😅 grinning face with sweat;phew relief nervous
🤣 rolling on the floor laughing;rofl lol laugh
😂 face with tears of joy;lol laugh cry funny
🙂 slightly smiling face;smile
🙃 upside-down face;silly sarcasm
😉 winking face;wink flirt
😊 smiling face with smiling eyes;blush happy
😇 smiling face with halo;angel innocent
🥰 smiling face with hearts;love adore crush
😍 smiling face with heart-eyes;love crush
🤩 star-struck;wow amazing excited
😘 face blowing a kiss;love
😗 kissing face;kiss
☺️ smiling face;happy
🥲 smiling face with tear;grateful proud touched
😋 face savoring food;yum delicious tasty
😛 face with tongue;playful
😜 winking face with tongue;joke silly
🤪 zany face;crazy goofy wild
🤑 money-mouth face;money rich
🤗 smiling face with open hands;hug hugging thanks
🤭 face with hand over mouth;oops giggle
🤫 shushing face;quiet shh secret
🤔 thinking face;think hmm ponder
🤐 zipper-mouth face;secret quiet
🤨 face with raised eyebrow;skeptical doubt hmm
😐 neutral face;meh blank
😶 face without mouth;silent speechless
😏 smirking face;smirk smug
😒 unamused face;meh annoyed
🙄 face with rolling eyes;eyeroll whatever
😬 grimacing face;awkward yikes
😌 relieved face;calm content
😔 pensive face;sad thoughtful
😪 sleepy face;tired
🤤 drooling face;drool hungry
😴 sleeping face;sleep zzz tired
😷 face with medical mask;sick ill
🤒 face with thermometer;sick ill fever
🤢 nauseated face;sick gross
🤮 face vomiting;sick puke
🥵 hot face;heat sweat
🥶 cold face;freezing
🥴 woozy face;dizzy tipsy
😵 face with crossed-out eyes;dizzy dead
🤯 exploding head;mind blown shocked
🤠 cowboy hat face;yeehaw
🥳 partying face;party celebrate birthday
😎 smiling face with sunglasses;cool
🤓 nerd face;geek
🧐 face with monocle;inspect curious
😕 confused face;puzzled
😟 worried face;nervous
🙁 slightly frowning face;sad
☹️ frowning face;sad
😮 face with open mouth;wow surprised oh
😲 astonished face;shocked amazed
😳 flushed face;embarrassed blush
🥺 pleading face;please puppy eyes
😨 fearful face;scared afraid
😰 anxious face with sweat;nervous
😢 crying face;sad tear cry
😭 loudly crying face;sob sad cry
😱 face screaming in fear;scream scared omg
😞 disappointed face;sad
😩 weary face;tired frustrated
😫 tired face;exhausted
🥱 yawning face;bored tired
😤 face with steam from nose;triumph angry huff
😡 enraged face;angry mad pouting
😠 angry face;mad grumpy
🤬 face with symbols on mouth;swearing cursing
😈 smiling face with horns;devil evil
👿 angry face with horns;devil imp
💀 skull;dead death
☠️ skull and crossbones;danger poison
💩 pile of poo;poop
🤡 clown face
👻 ghost;halloween boo
👽 alien;ufo space
👾 alien monster;game space invader
🤖 robot;bot machine
😺 grinning cat;happy
😹 cat with tears of joy;laugh
😻 smiling cat with heart-eyes;love
🙈 see-no-evil monkey;hide shy
💋 kiss mark;lips
💌 love letter;mail
❤️ red heart;love like
💘 heart with arrow;love cupid
💖 sparkling heart;love
💕 two hearts;love
❣️ heart exclamation;love
💔 broken heart;sad breakup
🧡 orange heart;love
💛 yellow heart;love
💚 green heart;love
💙 blue heart;love
💜 purple heart;love
🖤 black heart;love
🤍 white heart;love
💯 hundred points;100 perfect score
💥 collision;boom bang
💫 dizzy;star
💦 sweat droplets;water splash
💨 dashing away;fast wind
💬 speech balloon;chat comment message
💭 thought balloon;think
💤 ZZZ;sleep`],
  ['people', 'People & gestures', `
👋 waving hand;hello hi bye wave
🖐️ hand with fingers splayed;five
✋ raised hand;stop high five
👌 OK hand;perfect
✌️ victory hand;peace
🤞 crossed fingers;luck hope
🤟 love-you gesture;ily
🤘 sign of the horns;rock metal
🤙 call me hand;shaka
👈 backhand index pointing left;point
👉 backhand index pointing right;point
👇 backhand index pointing down;point
👍 thumbs up;+1 like yes approve good
👎 thumbs down;-1 dislike no bad
✊ raised fist;power
👊 oncoming fist;punch bump
👏 clapping hands;clap applause bravo
🙌 raising hands;hooray celebrate praise
👐 open hands;hug
🤝 handshake;deal agreement
🙏 folded hands;please thanks pray
💅 nail polish;nails
💪 flexed biceps;strong muscle
👂 ear;listen hear
🧠 brain;smart think
👀 eyes;look see watching
👁️ eye;look
👄 mouth;lips
👶 baby;infant
🧒 child;kid
👦 boy;kid
👧 girl;kid
🧑 person;adult
👨 man;adult
👩 woman;adult
👴 old man;elderly
👵 old woman;elderly
🙋 person raising hand;hi question
🙇 person bowing;sorry thanks
🤦 person facepalming;facepalm ugh
🤷 person shrugging;shrug dunno whatever
🫂 people hugging;hug comfort
🧑‍💻 technologist;coder developer computer
🧑‍🏫 teacher;school
🧑‍🍳 cook;chef
🧑‍🌾 farmer;garden
🧑‍🚀 astronaut;space
🧑‍⚕️ health worker;doctor nurse
🕵️ detective;spy
🎅 Santa Claus;christmas
🦸 superhero;hero
🧙 mage;wizard witch magic
🚶 person walking;walk
🏃 person running;run jog
💃 woman dancing;dance
🕺 man dancing;dance
🧘 person in lotus position;yoga meditate
🧑‍🤝‍🧑 people holding hands;friends
👪 family;home
👤 bust in silhouette;user`],
  ['nature', 'Animals & nature', `
🐶 dog face;puppy pet
🐺 wolf;wild
🦊 fox;wild
🐱 cat face;kitten pet
🦁 lion;leo
🐯 tiger face;cat
🐎 horse;racing
🦄 unicorn;magic fantasy
🐄 cow;milk
🦒 giraffe;tall
🐘 elephant;big
🐹 hamster;pet
🐰 rabbit face;bunny
🦇 bat;vampire
🐻 bear;teddy
🐨 koala;australia
🐼 panda;bamboo
🐾 paw prints;paws
🦃 turkey;thanksgiving
🐤 baby chick;bird
🐦 bird;tweet
🐧 penguin;cold
🕊️ dove;peace
🦆 duck;quack
🦉 owl;wise night
🐸 frog;croak
🐢 turtle;slow
🐍 snake;reptile
🐉 dragon;fantasy
🦖 T-Rex;dinosaur
🐋 whale;ocean
🐬 dolphin;ocean
🦭 seal;ocean
🐟 fish;pisces
🦈 shark;ocean
🐙 octopus;ocean
🐌 snail;slow
🦋 butterfly;pretty
🐛 bug;insect
🐜 ant;insect
🐝 honeybee;bee
🐞 lady beetle;ladybug insect
🦠 microbe;germ virus
💐 bouquet;flowers
🌸 cherry blossom;flower spring
🌹 rose;flower love
🌻 sunflower;flower
🌷 tulip;flower
🌱 seedling;plant grow sprout
🪴 potted plant
🌳 deciduous tree
🌴 palm tree;beach
🌵 cactus;desert
🍀 four leaf clover;luck
🍁 maple leaf;autumn canada
🍂 fallen leaf;autumn
🍄 mushroom;fungus
🌍 globe showing Europe-Africa;earth world
🌙 crescent moon;night
🌞 sun with face
☀️ sun;sunny weather
⭐ star;favorite
🌟 glowing star;shine
🌠 shooting star;wish
☁️ cloud;weather
🌧️ cloud with rain;weather
🌩️ cloud with lightning;thunder storm
🌪️ tornado;weather
🌈 rainbow;pride
☔ umbrella with rain drops
⚡ high voltage;lightning zap
❄️ snowflake;cold winter
☃️ snowman;winter
🔥 fire;lit hot flame
💧 droplet;water
🌊 water wave;ocean sea`],
  ['food', 'Food & drink', `
🍇 grapes;fruit
🍉 watermelon;fruit summer
🍋 lemon;fruit sour
🍌 banana;fruit
🍍 pineapple;fruit
🥭 mango;fruit
🍎 red apple;fruit
🍑 peach;fruit
🍒 cherries;fruit
🍓 strawberry;fruit
🫐 blueberries;fruit
🍅 tomato;vegetable
🥑 avocado;fruit
🍆 eggplant;aubergine vegetable
🥕 carrot;vegetable
🌽 ear of corn;maize
🌶️ hot pepper;spicy chili
🥦 broccoli;vegetable
🥜 peanuts;nut
🍞 bread;loaf
🥐 croissant;breakfast
🥨 pretzel;snack
🥞 pancakes;breakfast
🧇 waffle;breakfast
🧀 cheese wedge
🥓 bacon;breakfast
🍔 hamburger;burger
🍟 french fries;chips
🍕 pizza;slice
🌭 hot dog;sausage
🥪 sandwich;lunch
🌮 taco;mexican
🌯 burrito;mexican
🥚 egg;breakfast
🍳 cooking;fried egg pan
🥗 green salad;healthy
🍿 popcorn;movie
🍚 cooked rice
🍜 steaming bowl;ramen noodles soup
🍝 spaghetti;pasta
🍣 sushi;fish japanese
🥟 dumpling;gyoza
🦀 crab;cancer
🍦 soft ice cream;dessert
🍨 ice cream;dessert
🍩 doughnut;donut dessert
🍪 cookie;biscuit dessert
🎂 birthday cake;party
🍰 shortcake;cake dessert
🧁 cupcake;cake dessert
🥧 pie;dessert
🍫 chocolate bar
🍬 candy;sweet
🍭 lollipop;sweet candy
🍯 honey pot
🥛 glass of milk
☕ hot beverage;coffee tea
🍾 bottle with popping cork;champagne celebrate
🍷 wine glass;drink
🍸 cocktail glass;drink
🍹 tropical drink;vacation
🍺 beer mug;drink
🍻 clinking beer mugs;beers cheers
🥂 clinking glasses;cheers toast celebrate
🥤 cup with straw;soda drink
🧋 bubble tea;boba drink
🧊 ice;cube cold
🍽️ fork and knife with plate;dinner eat`],
  ['activities', 'Activities', `
🎃 jack-o-lantern;halloween pumpkin
🎄 Christmas tree;xmas
🎆 fireworks;celebrate
✨ sparkles;shiny magic new
🎈 balloon;party birthday
🎉 party popper;celebrate tada hooray congratulations
🎊 confetti ball;party celebrate
🎀 ribbon;bow
🎁 wrapped gift;present birthday
🎫 ticket;admission
🏆 trophy;win prize award champion
🏅 sports medal;award
🥇 1st place medal;gold first win
🥈 2nd place medal;silver second
🥉 3rd place medal;bronze third
⚽ soccer ball;football sport
⚾ baseball;sport
🏀 basketball;sport
🏐 volleyball;sport
🏈 american football;sport
🎾 tennis;sport
🎳 bowling;sport
🏒 ice hockey;sport
🏓 ping pong;table tennis
🥊 boxing glove
⛳ flag in hole;golf
🎣 fishing pole
🎿 skis;ski
🎯 bullseye;target goal direct hit
🎱 pool 8 ball;billiards
🔮 crystal ball;fortune magic
🪄 magic wand
🎮 video game;controller gaming
🕹️ joystick;game gaming
🎰 slot machine;gamble casino
🎲 game die;dice
🧩 puzzle piece;jigsaw
🧸 teddy bear;toy plush
♥️ heart suit;cards
♟️ chess pawn
🃏 joker;cards
🎭 performing arts;theater drama
🖼️ framed picture;art painting
🎨 artist palette;art paint`],
  ['travel', 'Travel & places', `
🌋 volcano;mountain
⛰️ mountain;hike
🏕️ camping;tent outdoors
🏖️ beach with umbrella;vacation
🏝️ desert island;vacation
🏛️ classical building;museum
🏠 house;home
🏢 office building;work
🏥 hospital;doctor
🏨 hotel;travel
🏫 school;education
🏰 castle;fairy tale
🗽 Statue of Liberty;new york
⛪ church;religion
🕌 mosque;religion
⛺ tent;camping
🌃 night with stars
🏙️ cityscape;city
🌅 sunrise;morning
🌇 sunset;evening
🎡 ferris wheel;fair
🎢 roller coaster;fun
🚂 locomotive;train steam
🚆 train;rail
🚌 bus;transport
🚑 ambulance;emergency
🚒 fire engine;truck
🚓 police car
🚕 taxi;cab
🚗 automobile;car
🚚 delivery truck
🚜 tractor;farm
🏎️ racing car;race
🏍️ motorcycle;motorbike
🚲 bicycle;bike
⛽ fuel pump;gas petrol
🚨 police car light;siren alert
🛑 stop sign
🚧 construction;barrier
⚓ anchor;ship
⛵ sailboat;boat
🚢 ship;boat cruise
✈️ airplane;plane flight
🛫 airplane departure;takeoff flight
🛬 airplane arrival;landing flight
🚁 helicopter;chopper
🛰️ satellite;space
🚀 rocket;launch space ship
🛸 flying saucer;ufo
🧳 luggage;suitcase travel
⌛ hourglass done;time
⏳ hourglass not done;time wait
⌚ watch;time
⏰ alarm clock;time wake
🗺️ world map
🧭 compass;direction`],
  ['objects', 'Objects', `
👓 glasses;eyeglasses
🕶️ sunglasses;cool
👕 t-shirt;shirt
👖 jeans;pants
🧥 coat;jacket
👗 dress;clothes
👜 handbag;bag
🛍️ shopping bags
🎒 backpack;school bag
👟 running shoe;sneaker
👑 crown;king queen royal
🎩 top hat;fancy
🎓 graduation cap;graduate school
💄 lipstick;makeup
💍 ring;wedding diamond
💎 gem stone;diamond jewel
🔊 speaker high volume;loud
📣 megaphone;announcement
🔔 bell;notification
🔕 bell with slash;mute silent
🎵 musical note;music
🎶 musical notes;music
🎤 microphone;sing karaoke
🎧 headphone;music
🎸 guitar;music rock
🎹 musical keyboard;piano music
🎺 trumpet;music
📱 mobile phone;cell
🔋 battery;power
🔌 electric plug;power
💻 laptop;computer
🖥️ desktop computer
⌨️ keyboard;typing
💾 floppy disk;save
🎥 movie camera;film video
📺 television;tv
📷 camera;photo
📹 video camera
🔍 magnifying glass tilted left;search find
🕯️ candle;light
💡 light bulb;idea
📖 open book;read
📚 books;library read
📄 page facing up;document
📰 newspaper;news
💰 money bag;rich
💵 dollar banknote;money cash
💳 credit card;money pay
✉️ envelope;mail letter
📧 e-mail;email mail
📦 package;box parcel
✏️ pencil;write edit
📝 memo;note write
💼 briefcase;work business
📅 calendar;date
📈 chart increasing;graph growth up
📉 chart decreasing;graph down
📊 bar chart;graph stats
📌 pushpin;pin
📍 round pushpin;pin location
📎 paperclip;attach
✂️ scissors;cut
🗑️ wastebasket;trash delete bin
🔒 locked;lock secure
🔓 unlocked;unlock open
🔑 key;password lock
🔨 hammer;tool
🛠️ hammer and wrench;tools
🔧 wrench;tool fix
⚙️ gear;settings cog
🔗 link;chain url
🧬 dna;science
🔬 microscope;science lab
🔭 telescope;space stars
💉 syringe;vaccine
💊 pill;medicine
🗿 moai;statue`],
  ['symbols', 'Symbols', `
⚠️ warning;caution alert
⛔ no entry;forbidden stop
🚫 prohibited;forbidden no
⬆️ up arrow
➡️ right arrow
⬇️ down arrow
⬅️ left arrow
↩️ right arrow curving left;return
🔄 counterclockwise arrows button;refresh sync
☮️ peace symbol
☯️ yin yang;balance
♈ Aries;zodiac
♉ Taurus;zodiac
♊ Gemini;zodiac
♋ Cancer;zodiac
♌ Leo;zodiac
♍ Virgo;zodiac
♎ Libra;zodiac
♏ Scorpio;zodiac
♐ Sagittarius;zodiac
♑ Capricorn;zodiac
♒ Aquarius;zodiac
♓ Pisces;zodiac
▶️ play button;start
✖️ multiply;times x
➕ plus;add
➖ minus;subtract
♾️ infinity;forever
‼️ double exclamation mark;bangbang
⁉️ exclamation question mark;interrobang
❓ red question mark
❗ red exclamation mark;important
♻️ recycling symbol;recycle
⭕ hollow red circle
✅ check mark button;done yes ok tick
☑️ check box with check;done tick
✔️ check mark;done yes ok tick
❌ cross mark;no wrong x
©️ copyright
™️ trade mark;trademark tm
#️⃣ keycap: #;hash number
1️⃣ keycap: 1;one
ℹ️ information;info
🆕 NEW button
🆗 OK button
🆘 SOS button;help
🔴 red circle
🟠 orange circle
🟡 yellow circle
🟢 green circle
🔵 blue circle
🔷 large blue diamond
🏁 chequered flag;finish race
🚩 triangular flag
🏳️ white flag;surrender
🏳️‍🌈 rainbow flag;pride lgbt
🏳️‍⚧️ transgender flag;pride trans
🏴‍☠️ pirate flag;jolly roger`],
];

// Country flags are pairs of regional indicator letters: "<ISO code> <name>".
const FLAGS = 'AR Argentina,AU Australia,AT Austria,BE Belgium,BR Brazil,CA Canada,CH Switzerland,'
  + 'CL Chile,CN China,CO Colombia,CZ Czechia,DE Germany,DK Denmark,EG Egypt,ES Spain,'
  + 'EU European Union,FI Finland,FR France,GB United Kingdom,GR Greece,IE Ireland,IL Israel,'
  + 'IN India,IT Italy,JP Japan,KE Kenya,KR South Korea,MX Mexico,NG Nigeria,NL Netherlands,'
  + 'NO Norway,NZ New Zealand,PL Poland,PT Portugal,SE Sweden,TR Türkiye,UA Ukraine,'
  + 'US United States,ZA South Africa';

const TAB_ICONS = {
  recent: '🕘', smileys: '😀', people: '👋', nature: '🌳', food: '🍔',
  activities: '⚽', travel: '✈️', objects: '💡', symbols: '🔣', flags: '🏁',
};

// ---- the catalogue ---------------------------------------------------------------

const CATEGORIES = []; // {key, title, entries}
const ALL = []; // every entry: {emoji, name, order, nameWords, words, text}
const BY_EMOJI = new Map(); // emoji (also without U+FE0F) → entry

const stripVs = (s) => s.replace(/\uFE0F/g, '');

function addEntry(category, emoji, name, words) {
  const entry = {
    emoji,
    name,
    order: ALL.length,
    nameWords: name.toLowerCase().split(/[\s:-]+/).filter(Boolean),
    words: words ? words.toLowerCase().split(' ') : [],
    text: `${name} ${words}`.toLowerCase(),
  };
  category.entries.push(entry);
  ALL.push(entry);
  BY_EMOJI.set(emoji, entry);
  const bare = stripVs(emoji);
  if (!BY_EMOJI.has(bare)) BY_EMOJI.set(bare, entry);
}

for (const [key, title, lines] of DATA) {
  const category = { key, title, entries: [] };
  for (const line of lines.split('\n')) {
    const space = line.indexOf(' ');
    if (space < 1) continue;
    const [name, words = ''] = line.slice(space + 1).split(';');
    addEntry(category, line.slice(0, space), name, words);
  }
  CATEGORIES.push(category);
}
{
  const category = { key: 'flags', title: 'Flags', entries: [] };
  for (const item of FLAGS.split(',')) {
    const code = item.slice(0, 2);
    const emoji = String.fromCodePoint(...Array.from(code, (c) => 0x1f1e6 + c.charCodeAt(0) - 65));
    addEntry(category, emoji, `flag: ${item.slice(3)}`, code.toLowerCase());
  }
  CATEGORIES.push(category);
}

/** The CLDR short name of `emoji` ("thumbs up"), or '' when it is not in the catalogue. */
export function emojiName(emoji) {
  if (typeof emoji !== 'string') return '';
  const entry = BY_EMOJI.get(emoji) || BY_EMOJI.get(stripVs(emoji));
  return entry ? entry.name : '';
}

/** What the server accepts as one emoji: 1–16 code points, no whitespace. */
const isEmoji = (s) => typeof s === 'string' && s !== '' && Array.from(s).length <= 16 && !/\s/u.test(s);

/**
 * The emoji matching `query`, best first: every word of the query must be or start a word of
 * the name or of the search words, or at least occur in them. Ties go to the shorter name,
 * then to the catalogue order.
 */
function searchEmoji(query) {
  const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!terms.length) return [];
  const hits = [];
  for (const entry of ALL) {
    let score = 0;
    for (const term of terms) {
      const s = termScore(entry, term);
      if (s < 0) {
        score = -1;
        break;
      }
      score += s;
    }
    if (score >= 0) hits.push({ score, entry });
  }
  hits.sort((a, b) => a.score - b.score
    || a.entry.nameWords.length - b.entry.nameWords.length
    || a.entry.order - b.entry.order);
  return hits.map((hit) => hit.entry);
}

function termScore(entry, term) {
  if (entry.emoji === term || entry.nameWords.includes(term)) return 0;
  if (entry.nameWords.some((w) => w.startsWith(term))) return 1;
  if (entry.words.some((w) => w.startsWith(term))) return 2;
  return entry.text.includes(term) ? 3 : -1;
}

// ---- recently used -------------------------------------------------------------------

function loadRecent() {
  try {
    const list = JSON.parse(window.localStorage.getItem(RECENT_KEY) || '[]');
    return Array.isArray(list) ? list.filter(isEmoji).slice(0, RECENT_MAX) : [];
  } catch {
    return [];
  }
}

/** Put `emoji` first in the "Recently used" row (also for reactions chosen without the picker). */
export function rememberEmoji(emoji) {
  if (!isEmoji(emoji)) return;
  const list = [emoji, ...loadRecent().filter((e) => e !== emoji)].slice(0, RECENT_MAX);
  try {
    window.localStorage.setItem(RECENT_KEY, JSON.stringify(list));
  } catch { /* storage disabled or full: not remembered */ }
}

// ---- the picker ------------------------------------------------------------------------

const GAP = 6; // between the anchor and the popover
const MARGIN = 8; // kept free at the edges of the viewport
const CELL = 38; // the smallest width of one emoji button
const ROW = 40; // the height of one row of the grid
const MIN_HEIGHT = 220;
const SHEET_MAX_HEIGHT = 420;
const NARROW = '(max-width: 520px)';

let current = null;
let sequence = 0;
const lastCols = new Map(); // sheet or not → columns

/**
 * Open the emoji picker under (or above) `anchor`. `onPick(emoji)` is called with the chosen
 * emoji after the picker has closed and focus is back on `anchor`, so it may move focus
 * elsewhere. Only one picker is open at a time: opening another closes the first, and opening
 * it again for the same anchor closes it (a toggle button).
 *
 * @param {HTMLElement} anchor
 * @param {(emoji: string) => void} onPick
 * @param {{label?: string, align?: 'start' | 'end', onClose?: () => void}} [opts]
 *   `label` names the dialog (default "Emoji picker"); `align: 'end'` lines its right edge up
 *   with the anchor's; `onClose` runs however it closes.
 * @returns {{close: () => void}}
 */
export function openEmojiPicker(anchor, onPick, opts = {}) {
  if (current) {
    const previous = current;
    const same = previous.anchor === anchor;
    previous.close(same);
    if (same) return previous.handle;
  }
  const picker = new Picker(anchor, onPick, opts);
  current = picker;
  picker.open();
  return picker.handle;
}

class Picker {
  constructor(anchor, onPick, opts) {
    this.anchor = anchor;
    this.onPick = onPick;
    this.opts = opts || {};
    this.id = `emoji-${++sequence}`;
    this.closed = false;
    this.query = '';
    this.cols = 0;
    this.active = null; // the grid button with tabindex=0
    this.frame = 0;
    this.expanded = anchor.getAttribute('aria-expanded');
    this.handle = {
      close: () => this.close(this.root.contains(document.activeElement)),
    };
    this.onOutside = (e) => {
      if (!this.root.contains(e.target) && !this.anchor.contains(e.target)) this.close(false);
    };
    this.onResize = () => this.schedulePlace();
    this.onScroll = (e) => {
      if (!(e.target instanceof Node) || !this.root.contains(e.target)) this.schedulePlace();
    };
    this.build();
  }

  build() {
    this.search = h('input', {
      class: 'emoji-search',
      type: 'search',
      placeholder: 'Search emoji',
      'aria-label': 'Search emoji',
      autocomplete: 'off',
      autocapitalize: 'off',
      spellcheck: 'false',
      enterkeyhint: 'done',
      maxlength: 60,
    });
    this.tabs = h('div', { class: 'emoji-tabs', role: 'toolbar', 'aria-label': 'Emoji categories' });
    this.scroller = h('div', { class: 'emoji-scroll' });
    this.glyph = h('span', { class: 'emoji-preview-glyph' });
    this.label = h('span', { class: 'emoji-preview-name' });
    this.status = h('p', { class: 'visually-hidden', role: 'status' });
    const label = this.opts.label || 'Emoji picker';
    // Its own (hidden) heading, so the group headings below follow a level-2 heading wherever
    // the picker is placed in the page.
    this.root = h('div', { class: 'emoji-picker', role: 'dialog', 'aria-label': label, tabindex: -1 },
      h('h2', { class: 'visually-hidden' }, label),
      h('div', { class: 'emoji-head' }, this.search),
      this.tabs,
      this.scroller,
      h('div', { class: 'emoji-foot', 'aria-hidden': 'true' }, this.glyph, this.label),
      this.status);

    const recent = loadRecent().map((emoji) => BY_EMOJI.get(emoji) || { emoji, name: emojiName(emoji) || emoji });
    const groups = recent.length ? [{ key: 'recent', title: 'Recently used', entries: recent }] : [];
    groups.push(...CATEGORIES);

    this.sections = groups.map((group) => {
      const headingId = `${this.id}-${group.key}`;
      const grid = h('div', { class: 'emoji-grid', role: 'group', 'aria-labelledby': headingId });
      fillGrid(grid, group.entries);
      const section = h('section', { class: 'emoji-section' },
        h('h3', { class: 'emoji-heading', id: headingId }, group.title),
        grid);
      const tab = h('button', {
        type: 'button',
        class: 'emoji-tab',
        tabindex: -1,
        'aria-label': group.title,
        title: group.title,
        dataset: { key: group.key },
      }, TAB_ICONS[group.key] || group.entries[0].emoji);
      this.tabs.append(tab);
      this.scroller.append(section);
      return { key: group.key, section, grid, tab, count: group.entries.length };
    });
    this.resultsGrid = h('div', { class: 'emoji-grid', role: 'group', 'aria-labelledby': `${this.id}-results` });
    this.results = h('section', { class: 'emoji-results', hidden: true },
      h('h3', { class: 'emoji-heading', id: `${this.id}-results` }, 'Search results'),
      this.resultsGrid);
    this.empty = h('p', { class: 'emoji-empty', hidden: true });
    this.scroller.prepend(this.results, this.empty);

    this.root.addEventListener('keydown', (e) => this.onKey(e));
    this.root.addEventListener('focusin', (e) => this.onFocusIn(e));
    this.root.addEventListener('focusout', (e) => {
      // Focus moved somewhere else on the page (not to nowhere, as when the window blurs).
      if (e.relatedTarget instanceof Node && !this.root.contains(e.relatedTarget)) this.close(false);
    });
    this.search.addEventListener('input', () => this.filter(this.search.value));
    this.tabs.addEventListener('click', (e) => {
      const tab = e.target.closest('.emoji-tab');
      if (tab) this.jumpTo(tab.dataset.key);
    });
    this.scroller.addEventListener('click', (e) => {
      const btn = e.target.closest('.emoji-btn');
      if (btn) this.pick(btn.textContent);
    });
    this.scroller.addEventListener('mouseover', (e) => {
      const btn = e.target.closest('.emoji-btn');
      if (btn) this.preview(btn);
    });
    this.scroller.addEventListener('scroll', () => this.syncTabs(), { passive: true });
  }

  open() {
    // Columns as the last time (or a guess) before it is in the page: usually right, which
    // saves styling every button twice.
    const sheet = window.matchMedia(NARROW).matches;
    const guess = sheet ? Math.floor((document.documentElement.clientWidth - 18) / CELL) : 8;
    this.setCols(lastCols.get(sheet) || Math.max(1, guess));
    const host = this.anchor.closest('dialog[open]') || document.body;
    host.append(this.root);
    this.anchor.setAttribute('aria-expanded', 'true');
    this.place();
    this.setActive(this.firstButton(), false);
    this.setTab(this.sections[0].tab);
    this.search.focus({ preventScroll: true });
    document.addEventListener('pointerdown', this.onOutside, true);
    document.addEventListener('scroll', this.onScroll, true);
    window.addEventListener('resize', this.onResize);
    if (window.visualViewport) window.visualViewport.addEventListener('resize', this.onResize);
  }

  /** Close; with `restoreFocus`, focus goes back to the anchor. */
  close(restoreFocus) {
    if (this.closed) return;
    this.closed = true;
    if (current === this) current = null;
    cancelAnimationFrame(this.frame);
    document.removeEventListener('pointerdown', this.onOutside, true);
    document.removeEventListener('scroll', this.onScroll, true);
    window.removeEventListener('resize', this.onResize);
    if (window.visualViewport) window.visualViewport.removeEventListener('resize', this.onResize);
    this.root.remove();
    if (this.expanded == null) this.anchor.removeAttribute('aria-expanded');
    else this.anchor.setAttribute('aria-expanded', this.expanded);
    if (restoreFocus && this.anchor.isConnected && !this.anchor.closest('[inert]')) {
      this.anchor.focus({ preventScroll: true });
    }
    if (typeof this.opts.onClose === 'function') this.opts.onClose();
  }

  pick(emoji) {
    if (this.closed || !isEmoji(emoji)) return;
    rememberEmoji(emoji);
    this.close(true);
    this.onPick(emoji);
  }

  // ---- placement ---------------------------------------------------------------------

  schedulePlace() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (this.closed) return;
      if (!this.anchor.isConnected) this.close(false);
      else this.place();
    });
  }

  place() {
    const style = this.root.style;
    const width = document.documentElement.clientWidth;
    const height = window.innerHeight;
    const sheet = window.matchMedia(NARROW).matches;
    this.root.classList.toggle('is-sheet', sheet);
    if (sheet) {
      // Along the bottom of what is visible, above an on-screen keyboard.
      const vv = window.visualViewport;
      const bottom = vv ? Math.min(height, vv.offsetTop + vv.height) : height;
      const tall = Math.round(Math.min(SHEET_MAX_HEIGHT, (vv ? vv.height : height) * 0.7));
      style.height = `${tall}px`;
      style.left = '0px';
      style.top = `${Math.max(0, bottom - tall)}px`;
    } else {
      style.height = '';
      const box = this.anchor.getBoundingClientRect();
      const w = this.root.offsetWidth;
      const wanted = this.root.offsetHeight;
      const below = height - box.bottom - GAP - MARGIN;
      const above = box.top - GAP - MARGIN;
      let tall;
      let top;
      if (below >= wanted || (above < wanted && below >= above)) {
        tall = Math.min(wanted, Math.max(below, MIN_HEIGHT));
        top = box.bottom + GAP;
      } else {
        tall = Math.min(wanted, Math.max(above, MIN_HEIGHT));
        top = box.top - GAP - tall;
      }
      tall = Math.max(0, Math.min(tall, height - 2 * MARGIN));
      if (tall !== wanted) style.height = `${tall}px`;
      top = Math.max(MARGIN, Math.min(top, height - tall - MARGIN));
      let left = this.opts.align === 'end' ? box.right - w : box.left;
      left = Math.max(MARGIN, Math.min(left, width - w - MARGIN));
      style.left = `${Math.round(left)}px`;
      style.top = `${Math.round(top)}px`;
    }
    const pad = getComputedStyle(this.scroller);
    const inner = this.scroller.clientWidth - parseFloat(pad.paddingLeft) - parseFloat(pad.paddingRight);
    const cols = Math.max(1, Math.floor(inner / CELL));
    lastCols.set(sheet, cols);
    this.setCols(cols);
  }

  /** The number of grid columns (the arrow keys need it too). */
  setCols(cols) {
    if (cols === this.cols) return;
    this.cols = cols;
    this.root.style.setProperty('--emoji-cols', String(cols));
    // Sections off screen are not laid out (content-visibility): give them their real height.
    for (const s of this.sections) {
      s.section.style.containIntrinsicSize = `auto ${Math.ceil(s.count / cols) * ROW + 30}px`;
    }
  }

  // ---- content -------------------------------------------------------------------------

  filter(value) {
    const query = value.trim().toLowerCase();
    if (query === this.query) return;
    this.query = query;
    for (const s of this.sections) s.section.hidden = query !== '';
    if (!query) {
      this.results.hidden = true;
      this.empty.hidden = true;
      this.resultsGrid.replaceChildren();
      this.status.textContent = '';
      this.setActive(this.firstButton(), false);
      this.syncTabs();
      return;
    }
    const hits = searchEmoji(query);
    fillGrid(this.resultsGrid, hits);
    this.results.hidden = hits.length === 0;
    this.empty.hidden = hits.length > 0;
    this.empty.textContent = `No emoji match “${value.trim()}”`;
    this.status.textContent = hits.length ? `${hits.length} emoji found` : 'No emoji found';
    this.scroller.scrollTop = 0;
    this.setActive(this.firstButton(), false);
    this.setTab(null);
  }

  grids() {
    if (this.query) return this.resultsGrid.firstElementChild ? [this.resultsGrid] : [];
    return this.sections.map((s) => s.grid);
  }

  firstButton() {
    const grids = this.grids();
    return grids.length ? grids[0].firstElementChild : null;
  }

  setActive(btn, focus) {
    if (this.active && this.active !== btn) this.active.tabIndex = -1;
    this.active = btn;
    if (!btn) {
      this.preview(null);
      return;
    }
    btn.tabIndex = 0;
    this.preview(btn);
    if (focus) {
      btn.focus({ preventScroll: true });
      const grid = btn.parentElement;
      // Show the category heading when arriving on a first row.
      if (Array.prototype.indexOf.call(grid.children, btn) < this.cols) {
        grid.previousElementSibling.scrollIntoView({ block: 'nearest' });
      }
      btn.scrollIntoView({ block: 'nearest' });
    }
  }

  preview(btn) {
    this.glyph.textContent = btn ? btn.textContent : '';
    this.label.textContent = btn ? btn.getAttribute('aria-label') : '';
  }

  setTab(tab) {
    for (const s of this.sections) {
      const on = s.tab === tab;
      s.tab.tabIndex = on || (!tab && s === this.sections[0]) ? 0 : -1;
      if (on) s.tab.setAttribute('aria-current', 'true');
      else s.tab.removeAttribute('aria-current');
    }
  }

  /** Mark the tab of the category at the top of the list. */
  syncTabs() {
    if (this.query) return;
    const { scrollTop, clientHeight, scrollHeight } = this.scroller;
    const top = scrollTop + 4;
    let at = this.sections[0];
    for (const s of this.sections) {
      if (s.section.offsetTop <= top) at = s;
      else break;
    }
    // Scrolled to the end: a short last category chosen from the bar stays chosen.
    const chosen = this.sections.find((s) => s.tab.hasAttribute('aria-current'));
    if (scrollTop + clientHeight >= scrollHeight - 2 && chosen && chosen.section.offsetTop >= top) return;
    if (at !== chosen) this.setTab(at.tab);
  }

  jumpTo(key) {
    const target = this.sections.find((s) => s.key === key);
    if (!target) return;
    if (this.query) {
      this.search.value = '';
      this.filter('');
    }
    this.scroller.scrollTop = target.section.offsetTop;
    this.setTab(target.tab);
    this.setActive(target.grid.firstElementChild, true);
  }

  // ---- keyboard ------------------------------------------------------------------------

  onFocusIn(e) {
    const t = e.target;
    if (t.classList.contains('emoji-btn') && t !== this.active) this.setActive(t, false);
    else if (t.classList.contains('emoji-tab')) {
      for (const s of this.sections) s.tab.tabIndex = s.tab === t ? 0 : -1;
    }
  }

  onKey(e) {
    if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      this.close(true);
      return;
    }
    if (e.key === 'Tab' && !e.ctrlKey && !e.altKey && !e.metaKey) {
      e.preventDefault();
      this.cycle(e.shiftKey ? -1 : 1);
      return;
    }
    const t = e.target;
    if (t === this.search) this.onSearchKey(e);
    else if (t.classList.contains('emoji-tab')) this.onTabKey(e, t);
    else if (t.classList.contains('emoji-btn')) this.onGridKey(e, t);
  }

  /** Tab and Shift+Tab go round the search box, the category bar and the grid. */
  cycle(step) {
    const stops = [this.search, this.tabs.querySelector('[tabindex="0"]'), this.active]
      .filter((el) => el && el.isConnected && el.getClientRects().length);
    if (!stops.length) return;
    const at = stops.findIndex((el) => el === document.activeElement || el.contains(document.activeElement));
    const next = stops[(at + step + stops.length) % stops.length];
    if (next === this.active) this.setActive(next, true);
    else next.focus();
  }

  onSearchKey(e) {
    if (e.key === 'ArrowDown' && this.active) {
      e.preventDefault();
      this.setActive(this.active, true);
    } else if (e.key === 'Enter') {
      e.preventDefault();
      const first = this.firstButton();
      if (this.query && first) this.pick(first.textContent);
    }
  }

  onTabKey(e, tab) {
    const tabs = this.sections.map((s) => s.tab);
    const i = tabs.indexOf(tab);
    let next = null;
    if (e.key === 'ArrowRight') next = tabs[(i + 1) % tabs.length];
    else if (e.key === 'ArrowLeft') next = tabs[(i - 1 + tabs.length) % tabs.length];
    else if (e.key === 'Home') next = tabs[0];
    else if (e.key === 'End') next = tabs[tabs.length - 1];
    else if (e.key === 'ArrowDown') {
      e.preventDefault();
      if (this.active) this.setActive(this.active, true);
      return;
    }
    if (next) {
      e.preventDefault();
      for (const t of tabs) t.tabIndex = t === next ? 0 : -1;
      next.focus();
    }
  }

  onGridKey(e, btn) {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      this.pick(btn.textContent);
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) {
      if (e.key !== 'Home' && e.key !== 'End') return;
    }
    if (e.key === 'Backspace') {
      e.preventDefault();
      this.search.focus();
      this.search.value = Array.from(this.search.value).slice(0, -1).join('');
      this.filter(this.search.value);
      return;
    }
    if (Array.from(e.key).length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey) {
      // Typing in the grid searches.
      e.preventDefault();
      this.search.focus();
      this.search.value += e.key;
      this.filter(this.search.value);
      return;
    }
    const next = this.neighbour(btn, e.key);
    if (next === undefined) return;
    e.preventDefault();
    if (next === this.search) this.search.focus();
    else if (next) this.setActive(next, true);
  }

  /** Where `key` moves from `btn`: a button, the search box, null (nowhere), undefined (not a move). */
  neighbour(btn, key) {
    const grids = this.grids();
    const gi = grids.indexOf(btn.parentElement);
    if (gi < 0) return undefined;
    const items = grids[gi].children;
    const n = items.length;
    const i = Array.prototype.indexOf.call(items, btn);
    const cols = this.cols;
    const col = i % cols;
    const prev = grids[gi - 1];
    const next = grids[gi + 1];
    switch (key) {
      case 'ArrowRight':
        return items[i + 1] || (next && next.firstElementChild) || null;
      case 'ArrowLeft':
        return items[i - 1] || (prev && prev.lastElementChild) || null;
      case 'ArrowDown':
        if (i + cols < n) return items[i + cols];
        // A shorter last row below: its last emoji.
        if (Math.floor(i / cols) < Math.floor((n - 1) / cols)) return items[n - 1];
        return next ? next.children[Math.min(col, next.children.length - 1)] : null;
      case 'ArrowUp': {
        if (i >= cols) return items[i - cols];
        if (!prev) return this.search;
        const m = prev.children.length;
        return prev.children[Math.min(Math.floor((m - 1) / cols) * cols + col, m - 1)];
      }
      case 'Home':
        return grids[0].firstElementChild;
      case 'End':
        return grids[grids.length - 1].lastElementChild;
      case 'PageDown':
        return (next && next.firstElementChild) || items[n - 1];
      case 'PageUp':
        return i > 0 ? items[0] : (prev && prev.firstElementChild) || null;
      default:
        return undefined;
    }
  }
}

/** Fill `grid` with one button per entry (plain DOM calls: this runs for hundreds). */
function fillGrid(grid, entries) {
  const frag = document.createDocumentFragment();
  for (const entry of entries) {
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'emoji-btn';
    btn.tabIndex = -1;
    btn.textContent = entry.emoji;
    btn.title = entry.name;
    btn.setAttribute('aria-label', entry.name);
    frag.append(btn);
  }
  grid.replaceChildren(frag);
}
