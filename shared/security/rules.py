"""Scored heuristic rules for prompt injection, written around intent phrases, not keywords.

A keyword ("ignore", "system", "select", "drop", ";", "--") says nothing about intent: business
users write "ignore the Q3 outlier" and "update me on the system migration" every day. A rule
here fires only on a phrase whose purpose is to steer the model: a verb aimed at the model's own
instructions ("ignore all previous instructions"), a claim about its identity ("you are now"),
a request for its hidden configuration, a fake chat-template token, our own fence marker.

Rules match the views from `normalise` (lower case, no accents, look-alikes folded), except
those marked `raw`, which need the original case ("DAN" the persona, not Dan from finance).
Each rule carries a weight in (0, 1]; `score` combines the weights of the rules that fired as a
noisy-OR, so two weak hints add up while one strong phrase is enough.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.security.normalise import Normalised


@dataclass(frozen=True)
class Rule:
    """One intent phrase family: its weight and the reason shown when it fires."""

    name: str
    weight: float
    reason: str
    patterns: tuple[re.Pattern[str], ...]
    raw: bool = False

    def matches(self, text: str) -> bool:
        """True when any pattern of the rule occurs in `text`."""
        return any(pattern.search(text) for pattern in self.patterns)


@dataclass(frozen=True)
class Hit:
    """A rule that fired, and the view it fired in ("text", "base64", "leetspeak", ...)."""

    rule: Rule
    view: str

    @property
    def reason(self) -> str:
        """The rule's reason, naming the layer when the phrase was hidden."""
        return self.rule.reason if self.view == "text" else f"{self.rule.reason} (in {self.view})"


def _rule(name: str, weight: float, reason: str, *patterns: str, raw: bool = False) -> Rule:
    """A rule from regex sources (compiled once, at import)."""
    flags = 0 if raw else re.IGNORECASE
    return Rule(name, weight, reason, tuple(re.compile(p, flags) for p in patterns), raw)


# Shared fragments (views are lower case and accent-free).
_OVERRIDE_VERB = (
    r"(?:ignore|disregard|forget|skip|override|overrule|bypass|abandon|discard|drop|set aside"
    r"|throw out|do not follow|don'?t follow|stop following|no longer follow|cancel)"
)
_OLD = (
    r"(?:previous|prior|above|preceding|earlier|initial|original|old|former|existing|given"
    r"|default|system|developer|safety|preset|programmed|built-in)"
)
_RULES_NOUN = (
    r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guidance|commands|orders"
    r"|constraints|restrictions|programming|guardrails|policies|system prompt|training)"
)
_REVEAL_VERB = (
    r"(?:reveal|print|show|output|repeat|display|tell|give|dump|leak|share|disclose|write out"
    r"|write down|echo|list|return|provide|expose|paste|copy|spell out|recite|translate)"
    r"(?:s|es|ed|ing)?"
)
_SECRET_NOUN = (
    r"(?:api[ _-]?keys?|secret keys?|secrets|credentials|passwords|access tokens?|bearer tokens?"
    r"|environment variables|env vars|connection strings?|private keys?)"
)
_NOT_A_TOPIC = (
    r"(?! ?(?:policy|policies|reset|rotation|requirements?|manager|expir\w*|complexity"
    r"|guidelines?|format|documentation|docs|settings|length|change|history|vault|store))"
)
_WITHOUT_LIMITS = (
    r"(?:ohne|sans|sin|senza) (?:jegliche |aucune |ninguna |alcuna |alcun )?"
    r"(?:einschr(?:a|ae)nkung\w*|restrictions?|restriccion(?:es)?|restrizion[ei]|filtr\w*"
    r"|zensur|censure|censura|limites|limiti|grenzen)\b"
)
_AI = r"(?:ai|a\.i\.|assistant|llm|language model|chatbot|bot|agent|model|gpt|copilot)"

RULES: tuple[Rule, ...] = (
    _rule(
        "override",
        0.9,
        "instruction override",
        rf"\b{_OVERRIDE_VERB} (?:(?:all|any|every|each) )?(?:of )?"
        rf"(?:(?:the|your|my|these|those|its|our) )?{_OLD}(?: (?:and|or|&) {_OLD})?"
        rf" {_RULES_NOUN}\b",
        rf"\b{_OVERRIDE_VERB} (?:all (?:of )?)?(?:your|all) (?:\w+ )?{_RULES_NOUN}\b",
        rf"\b{_OVERRIDE_VERB} (?:everything|anything|all)(?: (?:that )?(?:you(?:'ve| have)?"
        r" (?:were|been) (?:told|given|instructed)|(?:was |has been )?(?:said|written|stated"
        r"|given)))?"
        r" (?:above|before(?: this)?|so far|previously|earlier|up to (?:now|here))\b",
        rf"\b{_OVERRIDE_VERB} everything you(?:'ve| have)? (?:were |been )?(?:told|taught|given)\b",
    ),
    _rule(
        "override-policy",
        0.6,
        "instruction override",
        rf"\b{_OVERRIDE_VERB} (?:all |any )?(?:of )?(?:the |your )?(?:content|safety|usage|ethical)"
        r" (?:policy|policies|guidelines|filters|restrictions|guardrails)\b",
        r"\b(?:supersedes?|replaces?|overrides?|overrules?|takes? precedence over) (?:all |any )?"
        rf"(?:of )?(?:the |your )?{_OLD} (?:ones|instructions|directives|prompts|commands)\b",
    ),
    _rule(
        "override-above",
        0.6,
        "instruction override",
        rf"\b{_OVERRIDE_VERB} (?:all of )?the (?:above|preceding|foregoing)\b"
        r"(?! (?:table|chart|figures?|numbers?|outliers?|rows?|sections?|examples?|values?|data))",
    ),
    _rule(
        "new-instructions",
        0.6,
        "instruction override",
        r"\b(?:new|updated|real|actual|true|revised) (?:system )?instructions? ?(?::|follow|are)",
        r"\byour (?:new|real|true|actual) (?:task|instructions?|role|goal|purpose|objective"
        r"|directives?|orders) (?:is|are|will be|supersedes?|replaces?|overrides?)\b",
        r"\b(?:neue|nouvelles|nuevas|nuove) (?:anweisungen|instructions|instrucciones|istruzioni)"
        r" ?:",
    ),
    _rule(
        "no-restrictions",
        0.7,
        "instruction override",
        r"\byou (?:now )?(?:have|has|are under|operate with|are bound by|will have) no"
        r" (?:\w+ )?(?:restrictions|limits|limitations|rules|filters|guidelines|boundaries)\b",
        r"\b(?:no|without|free of|free from|ignore|ignoring) (?:any |all )?(?:ethical|moral|content"
        r"|safety) (?:guidelines|restrictions|filters|constraints|boundaries|rules|policy|policies"
        r"|limitations)\b",
        r"\b(?:answer|respond|reply|comply|proceed|output|speak|talk)(?: \w+){0,2} without"
        r" (?:any )?(?:restrictions|limits|limitations|filters|censorship|guardrails|boundaries)\b",
        r"\b(?:safety|content|ethical|security) (?:protocols|filters|guidelines|restrictions"
        r"|guardrails|checks|mode|policy) (?:are |is |have been |has been )?(?:now )?(?:disabled"
        r"|deactivated|removed|lifted|suspended|bypassed|turned off)\b",
    ),
    _rule(
        "from-now-on",
        0.45,
        "instruction override",
        r"\b(?:from now on|from this point on|henceforth),? (?:you (?:are|will|must|shall|should"
        r"|can|have)|act|respond|answer|reply|always|only|ignore)\b",
    ),
    _rule(
        "chat-template",
        0.9,
        "chat-template token",
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id"
        r"|end_header_id|begin_of_text|end_of_turn)\|>",
        r"\[/?inst\]|<</?sys>>|</?(?:system|sys)>|<start_of_turn>|<end_of_turn>",
    ),
    _rule(
        "fake-system",
        0.7,
        "system/role impersonation",
        r"#{2,} ?(?:system|instructions?|developer|admin)\b",
        r"\[(?:system|developer|admin|administrator|assistant)(?: (?:message|prompt|note|override"
        r"|instructions?))?\]",
        r"\b(?:system|developer|admin|administrator) (?:prompt|message|override|instructions?"
        r"|note|notice|update|alert) ?:",
        r"\b(?:systemhinweis|systemnachricht|systemanweisung|note (?:du )?systeme|message (?:du )?"
        r"systeme|nota (?:di|del) sistema|mensaje del sistema|nota del sistema|aviso del sistema"
        r"|messaggio di sistema) ?:",
        r"^(?:system|assistant) ?:",
    ),
    _rule(
        "you-are-now",
        0.5,
        "system/role impersonation",
        r"\byou are (?:now|no longer|henceforth) (?:called|named|free|unrestricted|unfiltered"
        r"|jailbroken|evil|dan|bound|restricted|limited|required|an? ai|an? assistant)\b",
        r"\byou are (?:now|henceforth) (?:a|an|the|my) (?:\w+ ){0,2}(?:ai|assistant|bot|chatbot"
        r"|model|persona|character|hacker|pirate|villain|entity|version of yourself)\b",
        r"\b(?:pretend|imagine|act as if|behave as if) (?:that )?you (?:are|were|have)"
        r" (?:no|an? (?:unrestricted|unfiltered|uncensored|evil|different|new))\b",
        r"\b(?:i am|i'm|this is|as) (?:your|the model'?s) (?:developer|creator|programmer|owner"
        r"|administrator|admin|maker|trainer)\b",
    ),
    _rule(
        "exfil-system-prompt",
        0.85,
        "system prompt exfiltration",
        rf"\b{_REVEAL_VERB} (?:me |us )?(?:out )?(?:back )?(?:all (?:of )?)?(?:your|the)"
        r"(?: (?:full|entire|complete|exact|original|hidden|secret|initial|internal|verbatim"
        r"|underlying|confidential|current))* (?:system (?:prompt|message|instructions?)"
        r"|initial (?:prompt|instructions)|hidden (?:prompt|instructions)|pre-?prompt"
        r"|meta ?prompt|developer (?:message|prompt|instructions))\b",
    ),
    _rule(
        "exfil-instructions",
        0.6,
        "system prompt exfiltration",
        rf"\b{_REVEAL_VERB} (?:me |us )?(?:all )?(?:of )?your(?: (?:full|exact|original|initial"
        r"|hidden|secret|internal|complete))* (?:instructions|prompt|rules|guidelines|directives"
        r"|configuration|programming)\b",
        r"\bwhat (?:are|were|is|was) your (?:\w+ )?(?:instructions|system prompt|prompt"
        r"|directives|initial prompt)\b",
        r"\bwhat (?:were you|have you been) (?:told|instructed|programmed)\b",
        r"\b(?:repeat|print|output|copy|write out) (?:everything|all|the text|the words|the content"
        r"|all the text)(?: (?:that )?(?:is|was) (?:written|said))? (?:above|before|so far)\b",
        r"\bstarting with ['\"]?you are\b",
    ),
    _rule(
        "exfil-secrets",
        0.6,
        "secret exfiltration",
        rf"\b(?:{_REVEAL_VERB}|send) (?:me |us )?(?:(?:all|the|your|any|every) )*{_SECRET_NOUN}"
        rf"\b{_NOT_A_TOPIC}",
        r"\bexfiltrat\w+\b",
        r"\b(?:dump|reveal|print|leak|expose)(?: \w+)? (?:the |your |all )?(?:internal|hidden"
        r"|secret) (?:configuration|config|settings|prompt|instructions)\b",
    ),
    _rule(
        "exfil-send",
        0.6,
        "data exfiltration",
        r"\b(?:send|post|forward|upload|transmit|leak|append|submit|email|e-mail) (?:it|this|them"
        r"|everything|all (?:data|of it|the data)|(?:the|this|all|our|your|their) (?:\w+ )?(?:data"
        r"|conversation|chat|contents?|results?|history|answers?|responses?|secrets?|keys?"
        r"|summary|messages?|records?|files?|tokens?|credentials|details|information))"
        r"(?: \S+){0,4} to (?:https?://|www\.|the (?:following )?(?:url|endpoint|webhook|server"
        r"|link|address below))",
    ),
    _rule(
        "markdown-exfil",
        0.8,
        "markdown image exfiltration link",
        r"!\[[^\]]{0,200}\]\( ?(?:https?:)?//[^)\s]{1,400}\?[^)\s]{0,400}=",
        r"<img[^>]{0,200}src=['\"]?(?:https?:)?//[^'\" >]{1,400}\?[^'\" >]{0,400}=",
    ),
    _rule(
        "run-command",
        0.45,
        "command injection",
        r"\b(?:run|execute|eval|evaluate) (?:the following|this|these|that) (?:shell |bash"
        r" |terminal |system |python |powershell |javascript )?(?:commands?|code|scripts?|payload"
        r"|snippet)\b",
    ),
    _rule(
        "shell",
        0.8,
        "command injection",
        r"\b(?:curl|wget) [^|\n]{1,200}\| ?(?:ba|z)?sh\b",
        r"\brm -rf /",
    ),
    _rule(
        "tool-call",
        0.6,
        "tool invocation aimed at the model",
        r"\b(?:call|invoke|use|trigger|execute|run) (?:the )?[`'\"]?[a-z][a-z0-9]*_[a-z0-9_]+"
        r"[`'\"]?(?: \w+)? (?:tool|function|plugin|action|api)\b",
        r"\b(?:call|invoke|execute) [a-z][a-z0-9]*_[a-z0-9_]+ ?\(",
        r"\b(?:call|invoke|trigger) (?:the )?[`'\"]?[a-z][a-z0-9]*_[a-z0-9_]+[`'\"]?"
        r" (?:on|to|with|and|using|for)\b",
        r"\buse (?:the )?[`'\"]?[a-z][a-z0-9]*_[a-z0-9_]+[`'\"]?(?: tool| function)? to (?:send"
        r"|delete|post|forward|email|upload|remove|transfer|write|execute|run|call)\b",
    ),
    _rule(
        "addressed-to-ai",
        0.6,
        "text addressed to the AI",
        rf"\b(?:note|message|instructions?|attention|important|notice|reminder)(?: \w+){{0,2}}"
        rf" (?:to|for) (?:the |any |all |an )?{_AI}s?\b(?! (?:manager|director|controller|editor"
        r"|professor|team|engineer|developer))",
        rf"\bif you are an? {_AI}\b",
        rf"\b{_AI}s?(?: \w+)? (?:reading|processing|summari[sz]ing|parsing|seeing|viewing"
        r"|integrating|using|ingesting|handling|analy[sz]ing) this\b",
        r"\bwhen (?:you )?summari[sz]ing this(?: \w+){0,3},? (?:you must|always|also|include|say"
        r"|tell|add|append|ignore)\b",
    ),
    _rule(
        "our-fence",
        0.9,
        "source fence spoofing",
        r"<<< ?(?:begin|end) source",
        r"\b(?:begin|end) source \[\d+\]",
    ),
    _rule(
        "fence-spoof",
        0.6,
        "delimiter spoofing",
        r"\b(?:end|close) of (?:the )?(?:document|context|source|input|user input|data"
        r"|system prompt|instructions|search results?)\W{0,6}(?:new|now|begin|start|system"
        r"|assistant|instructions?|ignore)\b",
        r"</(?:document|context|source|data|user_input|input|tool_output|search_results?"
        r"|instructions|untrusted)>",
        r"-{3,} ?(?:end|begin) (?:of )?(?:document|context|source|system|instructions)\b",
        r"```\s*system\b",
    ),
    _rule(
        "dan",
        0.6,
        "jailbreak persona",
        r"\bDAN\b",
        r"\bD\.A\.N\b",
        raw=True,
    ),
    _rule(
        "jailbreak",
        0.7,
        "jailbreak persona",
        r"\bdo anything now\b",
        r"\b(?:you are|you're|you will|act|respond|answer|reply|simulate|pretend|enter|entering)"
        r"(?: \w+){0,3} developer mode\b",
        r"\bdeveloper mode (?:enabled|activated|output|response|is (?:now )?(?:on|enabled|active))",
        r"\b(?:unrestricted|unfiltered|uncensored|unaligned|amoral|unethical|evil|jailbroken)"
        r" (?:ai|assistant|mode|model|version|chatbot|persona|character|bot|llm|alter ego)\b",
        r"\b(?:you are|you're|you now|now) (?:in|operating in|running in) (?:god|sudo|evil"
        r"|opposite|admin|root|unrestricted|maintenance|debug|developer) mode\b",
    ),
    _rule(
        "jailbreak-word",
        0.45,
        "jailbreak persona",
        r"\bjail ?broken?\b",
        r"\b(?:stay|remain|staying) (?:fully )?in character\b",
    ),
    _rule(
        "bulk-exfil",
        0.55,
        "data exfiltration",
        r"\b(?:send|email|e-mail|mail|forward|post|upload|transmit|leak|export)(?: \w+)?"
        r" (?:the |this |all |every |our |your )?(?:full|entire|complete|whole) (?:\w+ ){0,2}"
        r"(?:list|database|records|data|history|conversation|dump)\b(?: \S+){0,3} to\b",
        r"\b(?:send|email|e-mail|mail|forward|post|upload|transmit|envoie\S*|envoyez|sende|schick\w*"
        r"|envia\S*|invia\S*)(?: \S+){1,6} (?:to|a|an|al) [\w.+-]+@[\w-]+\.[\w.-]+",
    ),
    _rule(
        "decode-and-follow",
        0.6,
        "instruction hidden by encoding or obfuscation",
        r"\bdecode\b(?: \S+){0,6}?,? (?:and|then) (?:\w+ ){0,2}(?:do|follow|execute|obey|run"
        r"|carry out|act on|perform)\b",
    ),
    _rule(
        "persist",
        0.6,
        "memory or output persistence",
        r"\b(?:save|store|remember|write|add|persist|keep) (?:this|the following|these)"
        r"(?: \w+){0,2} (?:to|in|into) your (?:memory|context|notes|long-term memory)\b",
    ),
    _rule(
        "every-reply",
        0.45,
        "memory or output persistence",
        r"\b(?:repeat|include|append|add|attach|insert)(?:ed)? (?:\S+ ){0,4}"
        r"(?:in|to|(?:to |at )the end of) (?:every|each|all|any) (?:future |subsequent )?"
        r"(?:reply|replies|response|responses|answer|answers|message)\b",
        r"\b(?:am ende jeder antwort|a la fin de (?:toute|chaque) reponse|alla fine di ogni"
        r" risposta|al final de (?:cada|toda) respuesta)\b",
    ),
    _rule(
        "fake-reasoning",
        0.4,
        "forged reasoning",
        r"</?(?:thinking|reasoning|scratchpad|inner_monologue)>",
    ),
    # Multilingual variants of the commonest phrasings (views are accent-free: "überschreibe"
    # arrives as "uberschreibe", "révèle" as "revele").
    _rule(
        "override-de",
        0.85,
        "instruction override (de)",
        r"\b(?:ignorier\w*|vergiss|vergessen sie|missacht\w*|uberschreib\w*|verwirf)"
        r" (?:\S+ ){0,3}(?:vorherig\w*|bisherig\w*|obig\w*|vorig\w*|fruher\w*|alle|alles|deine"
        r"|ihre|ursprunglich\w*|system\w*)(?: \S+){0,2} (?:anweisung\w*|instruktion\w*|regeln"
        r"|vorgaben|befehle|anordnungen|richtlinien)\b",
        r"\b(?:ignorier\w*|vergiss|vergessen sie|missacht\w*) (?:alles|alle) (?:was|bisher|zuvor"
        r"|oben|vorher)\b",
    ),
    _rule(
        "override-fr",
        0.85,
        "instruction override (fr)",
        r"\b(?:ignore|ignorez|ignorer|oublie|oubliez|oublier|ne tiens pas compte|ne tenez pas"
        r" compte)(?: \S+){0,3} (?:instructions|consignes|regles|directives|ordres)"
        r"(?: \S+){0,1} ?(?:precedentes|anterieures|ci-dessus|initiales|d'origine)\b",
        r"\b(?:ignore|ignorez|oublie|oubliez) (?:toutes )?(?:tes|vos) (?:\S+ )?(?:instructions"
        r"|consignes|regles|directives)\b",
        r"\b(?:ignore|ignorez|oublie|oubliez) tout ce qui (?:precede|a ete dit)\b",
    ),
    _rule(
        "override-es",
        0.85,
        "instruction override (es)",
        r"\b(?:ignora|ignore|ignorad|ignorar|olvida|olvide|olvidad|olvidar|descarta|omite)"
        r"(?: \S+){0,3} (?:instrucciones|reglas|indicaciones|directrices|ordenes)(?: \S+){0,1}"
        r" ?(?:anteriores|previas|iniciales|originales|de arriba)\b",
        r"\b(?:ignora|ignore|olvida|olvide) (?:todas )?(?:tus|sus) (?:\S+ )?(?:instrucciones"
        r"|reglas|indicaciones|directrices)\b",
        r"\b(?:ignora|olvida) todo lo (?:anterior|que te (?:dije|dijeron))\b",
    ),
    _rule(
        "override-it",
        0.85,
        "instruction override (it)",
        r"\b(?:ignora|ignorate|ignori|dimentica|dimenticate|dimentichi|trascura|tralascia)"
        r"(?: \S+){0,3} (?:istruzioni|regole|indicazioni|direttive|ordini)(?: \S+){0,1}"
        r" ?(?:precedenti|iniziali|originali|di sopra|sopra)\b",
        r"\b(?:ignora|ignori|dimentica|dimentichi) (?:tutte )?(?:le )?(?:tue|sue) (?:\S+ )?"
        r"(?:istruzioni|regole|indicazioni|direttive)\b",
        r"\b(?:ignora|dimentica) tutto (?:quello|cio) che\b",
    ),
    _rule(
        "exfil-multilingual",
        0.75,
        "system prompt exfiltration (multilingual)",
        r"\b(?:zeig\w*|gib|nenn\w*|verrat\w*|offenbar\w*|druck\w*|wiederhol\w*)(?: mir)?"
        r" (?:dein\w*|ihr\w*|den|die) (?:system ?prompt|systemanweisung\w*|anweisungen"
        r"|systemnachricht|instruktionen)\b",
        r"\b(?:revele|revelez|montre|montrez|affiche|affichez|donne|donnez|dis|dites|repete"
        r"|repetez)(?:-moi| moi)? (?:ton|ta|tes|votre|vos|le|les) (?:prompt|invite|instructions"
        r"|consignes|message) ?(?:systeme|du systeme|initia\w*)?\b"
        r"(?<!le prompt)(?<!les instructions)",
        r"\b(?:revela|revelame|muestra|muestrame|dime|imprime|ensename|dame|repite)(?: \S+){0,2}"
        r" (?:tu|tus) (?:prompt|instrucciones|indicaciones|mensaje)(?: (?:del|de) sistema)?\b",
        r"\b(?:revela|revelame|muestra|muestrame|imprime|dame)(?: \S+){0,2} el (?:prompt|mensaje)"
        r" (?:del|de) sistema\b",
        r"\b(?:rivela|rivelami|mostra|mostrami|dimmi|stampa|dammi|ripeti)(?: \S+){0,2}"
        r" (?:il tuo|le tue|il) (?:prompt|istruzioni|messaggio)(?: di sistema)?\b(?<!il prompt)",
    ),
    _rule(
        "role-multilingual",
        0.5,
        "system/role impersonation (multilingual)",
        r"\bdu bist (?:jetzt|nun|ab sofort|ab jetzt|ab heute)\b",
        r"\bab (?:jetzt|sofort) \w+ du\b",
        r"\b(?:tu es|vous etes) (?:maintenant|desormais|a present)\b",
        r"\b(?:ahora|a partir de ahora|desde ahora) (?:eres|seras|actuas|actua como)\b",
        r"\b(?:ora|adesso|d'ora in poi|da ora in poi|da adesso) (?:sei|sarai|agisci)\b",
    ),
    _rule(
        "jailbreak-multilingual",
        0.6,
        "jailbreak persona (multilingual)",
        rf"\b(?:antwort\w*|rispond\w*|respond\w*|repond\w*|contest\w*|agisci|actua|handle)"
        rf"(?: \S+){{0,4}} {_WITHOUT_LIMITS}",
        r"\b(?:ohne|sans|sin|senza) (?:jegliche |aucune |ninguna |alcuna |alcun )?(?:ethische"
        r"|ethiques?|eticas?|etiche) (?:einschr(?:a|ae)nkung\w*|restrictions?|restriccion(?:es)?"
        r"|restrizion[ei]|regeln|regles|reglas|regole|grenzen|limites|limiti)\b",
    ),
    _rule(
        "devmode-multilingual",
        0.45,  # "Entwicklermodus" is also a phone setting: a hint, not proof
        "jailbreak persona (multilingual)",
        r"\b(?:entwicklermodus|modalita (?:sviluppatore|sviluppo)|modo (?:desarrollador"
        r"|de desarrollador)|mode (?:developpeur|de developpement))\b",
    ),
)

# Traits of the text itself, found while normalising: weak alone, they tip a borderline score.
SIGNAL_WEIGHTS: dict[str, float] = {
    "zero-width characters": 0.25,
    "bidi control characters": 0.3,
    "unicode tag characters": 0.45,
    "mixed-script look-alikes": 0.3,
    "encoded segment": 0.1,
}
HIDDEN_WEIGHT = 0.25  # a phrase that only appears once decoded was hidden on purpose
HIDDEN_REASON = "instruction hidden by encoding or obfuscation"


def find_hits(normalised: Normalised, rules: Iterable[Rule] = RULES) -> list[Hit]:
    """The rules that fire, each once, in the first view (plain text first) that shows it."""
    hits: list[Hit] = []
    for rule in rules:
        if rule.raw:
            if rule.matches(normalised.cased):
                hits.append(Hit(rule, "text"))
            continue
        view = next((v.name for v in normalised.views if rule.matches(v.text)), None)
        if view is not None:
            hits.append(Hit(rule, view))
    return hits


def score(hits: Iterable[Hit], signals: Iterable[str]) -> float:
    """Noisy-OR of the weights of the rules that fired, the signals and a hiding bonus."""
    weights = [hit.rule.weight for hit in hits]
    weights += [SIGNAL_WEIGHTS.get(signal, 0.0) for signal in signals]
    if any(hit.view != "text" for hit in hits):
        weights.append(HIDDEN_WEIGHT)
    miss = 1.0
    for weight in weights:
        miss *= 1.0 - weight
    return round(1.0 - miss, 4)
