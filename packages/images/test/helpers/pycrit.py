# Runs the oracle's pycriu (what `crit` uses) over a batch of tasks read as JSON
# from stdin; prints one JSON object of results. Used by the tests to compare
# our decode/encode with crit's, byte for byte and character for character.
import base64, io, json, sys

from pycriu import images


def decode(path, pretty, nopl):
    with open(path, 'rb') as f:
        img = images.load(f, pretty, nopl)
    return json.dumps(img, indent=4 if pretty else None)


def run(task):
    op = task['op']
    try:
        if op == 'decode':
            out = {'plain': decode(task['file'], False, False), 'pretty': decode(task['file'], True, False)}
            if task.get('nopl'):
                out['nopl'] = decode(task['file'], True, True)
            return out
        if op == 'encode':
            f = io.BytesIO()
            images.dump(json.loads(task['json']), f)
            return {'bytes': base64.b64encode(f.getvalue()).decode()}
        if op == 'info':
            with open(task['file'], 'rb') as f:
                return {'info': images.info(f)}
        if op == 'dumps':
            return {'text': json.dumps(json.loads(task['json']), indent=4 if task.get('pretty') else None)}
        raise Exception('unknown op ' + op)
    except Exception as e:  # crit's own failures are reported, not fatal
        return {'error': '%s: %s' % (type(e).__name__, e)}


tasks = json.load(sys.stdin)
json.dump([run(t) for t in tasks], sys.stdout)
